"""Every catalog workload, raced for real through the harness on the model targets (small
sizes): the checker finds an atomic order and every round grades ACCEPTABLE or INTERESTING,
in both the strict and the compat reading."""

from __future__ import annotations

from pathlib import Path

import pytest

import workloads
from stress.driver import perform
from stress.harness import TargetOptions
from stress.harness._model import ModelTarget
from stress.harness._runner import RunConfig
from stress.harness._threads import ThreadsTarget

ALLOWED = {"ACCEPTABLE", "INTERESTING"}


def _run(name: str, out: Path, target_class: type, **options: object) -> dict:
    workload = workloads.get(name)
    opts = TargetOptions(seed=11, **options)  # type: ignore[arg-type]
    config = RunConfig(workload, name, opts, 4, 12, None, out)
    return perform(config, target_class(opts), check_timeout=30, handle_sigint=False)


def _assert_clean(summary: dict) -> None:
    assert summary["check"]["verdict"] == "OK", summary["check"]["reason"]
    for reading in ("strict", "compat"):
        graded = summary["grading"][reading]
        grades = {row["grade"] for row in graded["outcomes"]}
        assert grades and grades <= ALLOWED, (reading, graded["outcomes"])
    assert summary["verdict"] == "OK" and summary["exit_code"] == 0, summary["reasons"]


@pytest.mark.parametrize("name", sorted(workloads.catalog()))
@pytest.mark.parametrize("scheduler", ["random", "pct"])
def test_catalog_workload_on_model(name: str, scheduler: str, tmp_path: Path) -> None:
    summary = _run(name, tmp_path / "run", ModelTarget, scheduler=scheduler)
    assert summary["rounds"] == 12
    _assert_clean(summary)


@pytest.mark.parametrize("name", sorted(workloads.catalog()))
def test_catalog_workload_on_model_threads(name: str, tmp_path: Path) -> None:
    summary = _run(name, tmp_path / "run", ThreadsTarget)
    _assert_clean(summary)
