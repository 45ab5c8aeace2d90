"""Whole kernel runs on the native engine, judged: OK when honest, VIOLATION when it lies,
UNKNOWN when a call hangs (the C racer's test switches, $MMRACE_NATIVE_DEBUG)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import workloads
from stress.driver import perform
from stress.harness import RunConfig, TargetOptions, make_target
from stress.history import load_history
from tests.helpers import assert_judged_ok

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux"),
]
DEBUG_ENV = "MMRACE_NATIVE_DEBUG"


def run(out: Path, workload: str, tasks: int, rounds: int, **kw: object) -> dict[str, object]:
    options = TargetOptions(spec="kernel", seed=7, engine="native", **kw)  # type: ignore[arg-type]
    config = RunConfig(workloads.get(workload), workload, options, tasks, rounds, None, out)
    target = make_target(options)
    summary = perform(config, target, check_timeout=120, handle_sigint=False)
    assert target.describe["engine"] == "native"
    return summary


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workload", "tasks", "rounds"),
    [("same-page", 4, 2000), ("same-range", 8, 500), ("mixed", 4, 300), ("churn", 3, 300)],
)
def test_native_histories_are_judged_ok(
    tmp_path: Path, workload: str, tasks: int, rounds: int
) -> None:
    summary = run(tmp_path / "run", workload, tasks, rounds)
    assert summary["rounds"] == rounds and summary["problems"] == []
    assert_judged_ok(int(summary["exit_code"]), summary)  # type: ignore[call-overload]


def test_a_forged_success_is_a_violation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEBUG_ENV, "forge:1")  # task 1 reports its EEXIST as the page
    summary = run(tmp_path / "run", "same-page", 2, 50)
    assert summary["verdict"] == "VIOLATION" and summary["exit_code"] == 1


def test_a_hung_call_is_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEBUG_ENV, "hang:0")
    summary = run(tmp_path / "run", "same-page", 3, 50, timeout=0.5)
    assert summary["verdict"] == "UNKNOWN" and summary["exit_code"] == 3
    assert "did not return within 0.5 s" in str(summary)


def test_batched_and_unbatched_runs_are_judged_alike(tmp_path: Path) -> None:
    """Many rounds per C call (the default) and a round per call (batch=1): the same rounds,
    ops per round and task numbering, and both judged OK."""
    shapes = []
    for name, batch in (("batched", None), ("alone", 1)):
        summary = run(tmp_path / name, "same-page", 3, 400, batch=batch)
        assert summary["rounds"] == 400 and summary["problems"] == []
        assert_judged_ok(int(summary["exit_code"]), summary)  # type: ignore[call-overload]
        _, ops = load_history(tmp_path / name / "history.jsonl")
        shapes.append([(op.round, op.task, op.op) for op in ops])
    assert shapes[0] == shapes[1]


def test_a_mapping_placed_elsewhere_is_a_violation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEBUG_ENV, "move:1")  # task 1's NOREPLACE mmap lands a page higher
    summary = run(tmp_path / "run", "same-page", 2, 50)
    assert summary["verdict"] == "VIOLATION" and summary["exit_code"] == 1
    assert summary["rounds"] == 50 and summary["problems"] == []
