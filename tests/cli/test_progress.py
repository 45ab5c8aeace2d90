"""Progress: the live judge's verdict so far and its first violation at once; the status
lines of the phases after the race (a long check or report is never silent)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from stress.cli import main
from stress.cli._progress import PlainProgress
from stress.driver import Live
from stress.harness import RunStats


def test_the_first_violation_is_printed_at_once_and_once() -> None:
    out = io.StringIO()
    progress = PlainProgress(out, every=3600.0)  # no periodic line during the test
    stats = RunStats(4, 100, None)
    live = Live()
    progress(stats, live)
    assert out.getvalue() == ""
    live.first_violation, live.violation = 7, "two probes both won"
    progress(stats, live)
    progress(stats, live)
    assert out.getvalue() == "[mmrace] VIOLATION found live in round 7: two probes both won\n"


def test_the_periodic_line_shows_the_verdict_so_far() -> None:
    out = io.StringIO()
    progress = PlainProgress(out, every=0.0)
    live = Live(rounds_checked=40, verdict="OK")
    progress(RunStats(4, 100, None), live)
    assert "checked 40 rounds: OK so far" in out.getvalue()


def test_phase_lines_say_what_runs_and_how_long_it_took() -> None:
    out = io.StringIO()
    progress = PlainProgress(out)
    progress.phase("check", "checking 10 operations")
    progress.phase("report", "drawing")
    progress.done()
    progress.done()  # nothing running: nothing said
    lines = out.getvalue().splitlines()
    assert lines[0] == "[mmrace] check: checking 10 operations"
    assert lines[1].startswith("[mmrace] check: done in ") and lines[1].endswith(" s")
    assert lines[2] == "[mmrace] report: drawing"
    assert lines[3].startswith("[mmrace] report: done in ")
    assert len(lines) == 4


def test_a_run_announces_its_check_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "same-page", "--tasks", "2", "--rounds", "3", "--seed", "1"]
    assert main([*argv, "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "[mmrace] check: grading 3 rounds and checking" in err
    assert "[mmrace] report: drawing the plots" in err
    assert err.index("[mmrace] check:") < err.index("[mmrace] report:")
    assert (tmp_path / "r" / "report.html").is_file()
