"""Whole kernel runs on the native engine, judged: OK when honest, VIOLATION when it lies,
UNKNOWN when a call hangs (the C racer's test switches, $MMRACE_NATIVE_DEBUG)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import workloads
from stress.driver import perform
from stress.harness import RunConfig, TargetOptions, make_target
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
