"""`mmrace check`: exit codes 0/1/2/3, the counterexample in words, and --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mm
from stress.checker._mm_model import check_history
from stress.cli import main
from stress.history import Header, Operation, read_history, write_history

B = 0x100000000000
P = 4096
RW = mm.PROT_READ | mm.PROT_WRITE
PROBE = mm.Op.mmap(B, 2 * P, RW, mm.NR)


def _write(path: Path, ops: list[Operation]) -> Path:
    header = Header.create("model", workload="same-page", params=mm.Params.reference().to_json())
    write_history(path, header, ops)
    return path


def _round(r: int, winners: set[int], t: int, tasks: int = 6) -> list[Operation]:
    ops = [
        Operation(k, PROBE, B if k in winners else -mm.EEXIST, t + k, t + 100 + k, r)
        for k in range(tasks)
    ]
    ops.append(Operation(0, mm.Op.munmap(B, 2 * P), 0, t + 200, t + 210, r))
    return ops


def _history(path: Path, bad_round: int | None = None) -> Path:
    ops = []
    for r in range(5):
        ops += _round(r, {0, 3} if r == bad_round else {r % 6}, r * 1000)
    return _write(path, ops)


def test_ok_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(_history(tmp_path / "h.jsonl"))]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: all 5 partitions linearizable")
    assert "operations: 35, partitions: 5" in out


def test_violation_exits_1_with_counterexample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(_history(tmp_path / "h.jsonl", bad_round=2))]) == 1
    out = capsys.readouterr().out
    assert out.startswith("VIOLATION: round 2: two NOREPLACE probes of")
    assert "(tasks 0 and 3)" in out
    assert "counterexample (" in out and "minimized from" in out
    assert "longest order that explains a prefix:" in out
    assert "had mapped [0x100000000000, 0x100000002000)" in out


def test_no_minimize_keeps_the_whole_part(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _history(tmp_path / "h.jsonl", bad_round=2)
    assert main(["check", str(path), "--no-minimize"]) == 1
    out = capsys.readouterr().out
    assert "counterexample (7 operations;" in out


def test_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(_history(tmp_path / "h.jsonl", bad_round=4)), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "VIOLATION"
    assert data["operations"] == 35
    assert {"reason", "partitions", "seconds"} <= set(data)
    cx = data["counterexample"]
    assert cx["stuck"] and cx["events"]
    assert all(0 <= s["index"] < len(cx["events"]) for s in cx["stuck"])
    assert cx["events"][0]["addr"] == B


def test_tiny_timeout_on_a_history_that_needs_search_is_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # EEXIST on a free range: no direct order, no race-pass finding: only the search decides
    ops = [*_round(0, {0}, 0), Operation(1, PROBE, -mm.EEXIST, 5000, 5100, 1)]
    path = _write(tmp_path / "h.jsonl", ops)
    assert main(["check", str(path), "--timeout", "1e-9"]) == 3
    assert capsys.readouterr().out.startswith("UNKNOWN: time budget")
    assert main(["check", str(path)]) == 1


def test_a_pending_nonfixed_mmap_is_placed_wherever_it_explains_the_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A pending mmap may have been placed at B: the probe's EEXIST on B is explained (OK).
    anywhere = mm.Op.mmap(0, 2 * P, RW, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS)
    ops = [Operation(0, anywhere, None, 0, None), Operation(1, PROBE, -mm.EEXIST, 10, 20)]
    assert main(["check", str(_write(tmp_path / "h.jsonl", ops))]) == 0
    # Too long for the complete set of placements (200 pages): the search tries only the
    # spec's placement, so what it cannot explain is UNKNOWN, never VIOLATION.
    long = mm.Op.mmap(0, 200 * P, RW, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS)
    ops = [Operation(0, long, None, 0, None), Operation(1, PROBE, -mm.EEXIST, 10, 20)]
    capsys.readouterr()
    assert main(["check", str(_write(tmp_path / "long.jsonl", ops))]) == 3
    assert "no response" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty file"),
        ('{"mmrace_history":1,"target":"m"}\n{"t":0}\n', ":2: missing key 'k'"),
        ('{"mmrace_history":1,"target":"m","params":{"bogus":1}}\n', "unknown model parameter"),
    ],
)
def test_bad_input_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str
) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(text)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmrace check: error: ") and problem in err
    assert "Traceback" not in err


def test_bad_flags_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _history(tmp_path / "h.jsonl")
    assert main(["check", str(path), "--timeout", "-1"]) == 2
    assert main(["check", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_check_history_library_call(tmp_path: Path) -> None:
    header, reader = read_history(_history(tmp_path / "h.jsonl", bad_round=1))
    result = check_history(header, reader, timeout=30)
    assert result.verdict.value == "VIOLATION"
    assert result.operations == 35
