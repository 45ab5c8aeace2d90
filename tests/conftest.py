"""Fixtures shared by the test packages (which mirror the project's packages)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

RunResult = tuple[int, dict[str, Any]]


@pytest.fixture
def mmrace() -> Callable[..., int]:
    """The `mmrace` command in this process: ``mmrace("run", "--tasks", "2")`` -> exit code."""
    from stress.cli import main

    return lambda *argv: main([str(a) for a in argv])


@pytest.fixture
def mmrace_run(tmp_path: Path, mmrace: Callable[..., int]) -> Callable[..., RunResult]:
    """``mmrace_run(*argv, name="run")``: `mmrace run ARGV --out TMP/name --no-progress`, and
    the exit code with the run's summary.json."""

    def run(*argv: str, name: str = "run") -> RunResult:
        out = tmp_path / name
        code = mmrace("run", *argv, "--out", out, "--no-progress")
        return code, json.loads((out / "summary.json").read_text(encoding="utf-8"))

    return run
