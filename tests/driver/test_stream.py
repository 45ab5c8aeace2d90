"""Judging a history as a stream: the same verdict as the whole-file check, truncated files.

Long histories are made of many tiny generated ones (tests/checker/oracle/strategies: some
pending calls, half perturbed, so violations are common), one after another in time, each
followed by a serial munmap of the whole address space (a clean cut, unless a pending call
keeps the rest of the history one segment). The stream, cut at round records or from the calls
themselves, must give the verdict `check_events` gives on all the calls at once.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mm
from stress import checker
from stress.driver import check_file, check_whole_file
from stress.history import Header, HistoryWriter, Operation
from stress.verdict import Verdict
from tests.checker.oracle.strategies import Tiny, histories

STEP = 1 << 40  # time between pieces


def _pieces(tinies: list[Tiny], shuffle: random.Random | None) -> list[list[Operation]]:
    """Each tiny history as one round, shifted in time, with the cut's munmap at its end."""
    params = tinies[0].params
    rounds = []
    for r, tiny in enumerate(tinies):
        base = (r + 1) * STEP
        ops = [
            Operation(
                c.task, c.op, c.result, base + c.call, None if c.ret is None else base + c.ret, r
            )
            for c in tiny.calls
        ]
        if shuffle is not None:
            shuffle.shuffle(ops)  # the order of lines within a round does not matter
        cut = base + STEP // 2
        ops.append(Operation(0, mm.Op.munmap(0, params.task_size), 0, cut, cut + 1, r))
        rounds.append(ops)
    return rounds


def _write(path: Path, params: mm.Params, rounds: list[list[Operation]], *, records: bool) -> Path:
    header = Header.create("model", workload="same-page", params=params.to_json())
    with HistoryWriter(path, header) as writer:
        for r, ops in enumerate(rounds):
            writer.write_many(ops)
            if records:
                writer.write_round(r, setup=0, race=len(ops) - 1)
    return path


def _whole(params: mm.Params, rounds: list[list[Operation]]) -> Verdict:
    ops = [o for ops in rounds for o in ops]
    events, rnds = checker.to_events(ops)
    return checker.check_events(params, events, rnds).verdict


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(histories(), min_size=1, max_size=8), st.booleans(), st.integers(0, 9))
def test_the_stream_gives_the_whole_files_verdict(
    tmp_path: Path, tinies: list[Tiny], records: bool, seed: int
) -> None:
    params = tinies[0].params
    rounds = _pieces(tinies, random.Random(seed))
    path = _write(tmp_path / "h.jsonl", params, rounds, records=records)
    expected = _whole(params, rounds)
    assert check_file(path, None).verdict is expected
    assert check_whole_file(path, None).verdict is expected


def _serial_rounds(
    n: int, bad: int | None = None, pending_at: int | None = None
) -> list[list[Operation]]:
    """n serial rounds of two racing probes (one wins) and a munmap; ``bad``: both win."""
    page = 4096
    probe = mm.Op.mmap(0x100000000000, page, mm.PROT_READ | mm.PROT_WRITE, mm.NR)
    rounds = []
    for r in range(n):
        t = (r + 1) * 1000
        second = probe.addr if r == bad else -mm.EEXIST
        ops = [
            Operation(0, probe, probe.addr, t, t + 10, r),
            Operation(1, probe, second, t + 1, t + 11, r),
        ]
        if r == pending_at:
            ops.append(Operation(2, mm.Op.munmap(probe.addr, page), None, t + 2, None, r))
        ops.append(Operation(0, mm.Op.munmap(probe.addr, page), 0, t + 20, t + 30, r))
        rounds.append(ops)
    return rounds


@pytest.mark.parametrize("records", [True, False])
def test_many_rounds_are_checked_in_segments(tmp_path: Path, records: bool) -> None:
    params = mm.Params.reference()
    path = _write(tmp_path / "h.jsonl", params, _serial_rounds(30_000), records=records)
    done = check_file(path, None)
    assert done.verdict is Verdict.OK
    assert done.result.operations == 90_000
    assert "90000 operations in 30000 segments (the largest 3 calls)" in done.result.reason


@pytest.mark.parametrize("bad", [0, 17_000, 29_999])
def test_a_violation_anywhere_is_found(tmp_path: Path, bad: int) -> None:
    params = mm.Params.reference()
    rounds = _serial_rounds(30_000, bad=bad)
    path = _write(tmp_path / "h.jsonl", params, rounds, records=True)
    assert check_file(path, None).verdict is Verdict.VIOLATION
    assert _whole(params, rounds) is Verdict.VIOLATION


def test_a_pending_call_keeps_the_rest_in_one_segment(tmp_path: Path) -> None:
    params = mm.Params.reference()
    rounds = _serial_rounds(50, pending_at=10)
    done = check_file(_write(tmp_path / "h.jsonl", params, rounds, records=True), None)
    assert done.verdict is _whole(params, rounds)
    assert "(the largest 121 calls)" in done.result.reason  # rounds 10..49 are one segment


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("keep", [0.5, 0.93])
def test_a_truncated_history_is_unknown_for_its_rest(
    tmp_path: Path, keep: float, capsys: pytest.CaptureFixture[str]
) -> None:
    params = mm.Params.reference()
    path = _write(tmp_path / "h.jsonl", params, _serial_rounds(2000), records=True)
    _truncate(path, keep)
    assert not path.read_text().endswith("\n")  # the last line is cut short
    done = check_file(path, None)
    assert done.verdict is Verdict.UNKNOWN
    assert "the history is truncated (line" in done.result.reason
    assert "cut short, no trailer" in done.result.reason
    assert 0 < done.result.operations < 6000
    from stress.cli import main

    assert main(["check", str(path)]) == 3
    assert "truncated" in capsys.readouterr().out


def test_a_harness_history_without_its_trailer_is_truncated(tmp_path: Path) -> None:
    params = mm.Params.reference()
    path = _write(tmp_path / "h.jsonl", params, _serial_rounds(100), records=True)
    lines = path.read_text().splitlines(keepends=True)
    assert json.loads(lines[-1]).get("end") is not None
    path.write_text("".join(lines[:-1]))  # every line whole, the trailer lost
    done = check_file(path, None)
    assert done.verdict is Verdict.UNKNOWN
    assert "no trailer" in done.result.reason


def test_a_violation_before_the_cut_still_counts(tmp_path: Path) -> None:
    params = mm.Params.reference()
    path = _write(tmp_path / "h.jsonl", params, _serial_rounds(2000, bad=3), records=True)
    _truncate(path, 0.5)
    assert check_file(path, None).verdict is Verdict.VIOLATION


def test_a_history_without_trailer_is_never_ok(tmp_path: Path) -> None:
    """Another tool's file with no round records and no trailer is cut from its calls, but a
    missing trailer may mean a killed writer: UNKNOWN, judged up to the last segment."""
    params = mm.Params.reference()
    path = _write(tmp_path / "h.jsonl", params, _serial_rounds(100), records=False)
    assert check_file(path, None).verdict is Verdict.OK  # with its trailer
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))
    result = check_file(path, None).result
    assert result.verdict is Verdict.UNKNOWN and "no trailer" in result.reason


def test_lines_far_out_of_order_are_checked_whole(tmp_path: Path) -> None:
    params = mm.Params.reference()
    rounds = _serial_rounds(10_000, bad=2)
    rounds.reverse()  # the last round first: every cut is crossed by a later line
    path = _write(tmp_path / "h.jsonl", params, rounds, records=False)
    assert check_file(path, None).verdict is Verdict.VIOLATION
