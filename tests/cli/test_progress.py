"""The plain progress line: the live judge's verdict so far, its first violation at once."""

from __future__ import annotations

import io

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
