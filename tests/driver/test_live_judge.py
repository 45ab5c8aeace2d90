"""Judging while racing: the judge process's verdict is `mmrace check`'s on the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from stress.driver import check_file, perform
from stress.harness._model import ModelTarget
from stress.rundir import HISTORY_FILE
from tests.driver.test_perform import config


@pytest.mark.parametrize("variant", [None, "check-then-act"])
def test_the_live_verdict_is_the_files(tmp_path: Path, variant: str | None) -> None:
    cfg = config(tmp_path / "run", rounds=400, variant=variant)
    summary = perform(cfg, ModelTarget(cfg.target), check_timeout=30, handle_sigint=False)
    assert summary["judge"]["live"] is True
    assert summary["judge"]["rounds_read"] == 400
    checked = check_file(cfg.out / HISTORY_FILE, 30)
    assert summary["check"]["verdict"] == checked.verdict.value
    assert summary["check"]["operations"] == checked.result.operations
    assert summary["verdict"] == ("OK" if variant is None else "VIOLATION")
    if variant is not None:
        assert summary["judge"]["first_violation"] is not None
        assert summary["judge"]["stopped_on_violation"] is False


def test_stop_on_violation_ends_the_run_and_keeps_everything(tmp_path: Path) -> None:
    cfg = config(tmp_path / "run", rounds=None, variant="check-then-act")
    cfg = type(cfg)(cfg.workload, cfg.workload_ref, cfg.target, cfg.tasks, 10**9, None, cfg.out)
    summary = perform(
        cfg,
        ModelTarget(cfg.target),
        check_timeout=30,
        handle_sigint=False,
        stop_on_violation=True,
    )
    assert summary["verdict"] == "VIOLATION"
    assert summary["judge"]["stopped_on_violation"] is True
    assert summary["interrupted"].startswith("stopped at the first violation")
    assert summary["rounds"] < 10**9
    checked = check_file(cfg.out / HISTORY_FILE, 30)
    assert checked.verdict.value == "VIOLATION"


def test_without_the_live_judge_the_verdict_is_the_same(tmp_path: Path) -> None:
    cfg = config(tmp_path / "run", rounds=50, variant="check-then-act")
    summary = perform(
        cfg, ModelTarget(cfg.target), check_timeout=30, handle_sigint=False, live_judge=False
    )
    assert summary["judge"]["live"] is False
    assert summary["check"]["verdict"] == check_file(cfg.out / HISTORY_FILE, 30).verdict.value
