"""Following a history while it is written, and histories whose last line is cut short."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import mm
from stress.errors import UsageError
from stress.history import Header, HistoryWriter, Operation, follow_history, read_history

PROBE = mm.Op.mmap(0x100000000000, 4096, mm.PROT_READ | mm.PROT_WRITE, mm.NR)


def _ops(n: int) -> list[Operation]:
    return [Operation(k % 3, PROBE, -mm.EEXIST, 10 * k, 10 * k + 5, k // 3) for k in range(n)]


def test_a_growing_file_is_read_to_its_end(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    done = threading.Event()
    ops = _ops(300)

    def write() -> None:
        with HistoryWriter(path, Header.create("model"), flush_every=7) as writer:
            for k, op in enumerate(ops):
                writer.write(op)
                if k % 3 == 2:
                    writer.write_round(op.round, setup=0, race=3, flush=k % 2 == 0)
                    time.sleep(0.001)
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    header, reader = follow_history(path, done.is_set, poll=0.001)
    rounds: list[int] = []
    reader.on_round = lambda index, record: rounds.append(index)
    got = list(reader)
    thread.join()
    assert header.target == "model"
    assert got == ops
    assert rounds == list(range(100))
    assert reader.trailer == {"operations": 300}
    assert reader.torn is None


def test_following_a_file_that_never_comes_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        follow_history(tmp_path / "none.jsonl", lambda: True)


def test_a_cut_short_last_line_ends_the_history_when_allowed(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path, Header.create("model")) as writer:
        writer.write_many(_ops(10))
    text = path.read_text().splitlines(keepends=True)
    path.write_text("".join(text[:-2]) + text[-2][:17])  # no trailer, the last call torn
    _, reader = read_history(path)
    with pytest.raises(UsageError, match=":11: bad JSON"):
        list(reader)
    _, reader = read_history(path)
    reader.allow_torn = True
    assert len(list(reader)) == 9
    assert reader.torn == "line 11 is cut short"
