"""Live progress: a rich bar on a terminal, a plain line every few seconds otherwise.

Both read the runner's `RunStats` and the driver's `Live` hints (and what the live judge has
checked so far) from the per-round callback and redraw at most a few times a second, so
progress costs nothing measurable per round; the live judge's first violation is printed at
once. After the race, `phase(name, text)` prints one status line per later phase (check,
report) on stderr, so a long check or report is never silent; `done` says how long the phase
took.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from stress.driver import Live
from stress.harness import RunStats

PLAIN_EVERY = 5.0
RICH_EVERY = 0.1


def _left(stats: RunStats) -> str:
    if stats.time_budget is not None:
        return f"{max(0.0, stats.time_budget - stats.elapsed):.0f} s left"
    if stats.rounds_planned and stats.rounds:
        per = stats.elapsed / stats.rounds
        return f"~{per * (stats.rounds_planned - stats.rounds):.0f} s left"
    return ""


def _facts(stats: RunStats, live: Live) -> str:
    judged = ""
    if live.verdict is not None:
        judged = f"  checked {live.rounds_checked:,} rounds: {live.verdict} so far"
    return (
        f"{stats.operations:,} ops  {stats.throughput:,.0f} ops/s  "
        f"overlap {100 * stats.overlap_ratio:.0f}%  double wins {live.double_wins}" + judged
    )


def violation_line(live: Live) -> str:
    """The live judge's first violation, as the progress display announces it."""
    return f"[mmrace] VIOLATION found live in round {live.first_violation}: {live.violation}"


class _Phases:
    """The status lines of the phases after the race (one line each, on stderr)."""

    stream: IO[str]
    _phase: tuple[str, float] | None = None

    def phase(self, name: str, text: str) -> None:
        """Say that phase ``name`` starts and what it does (ends the previous phase)."""
        self.done()
        self._phase = (name, time.monotonic())
        print(f"[mmrace] {name}: {text}", file=self.stream, flush=True)

    def done(self) -> None:
        """Say how long the current phase took (nothing when none is running)."""
        if self._phase is None:
            return
        name, started = self._phase
        self._phase = None
        took = time.monotonic() - started
        print(f"[mmrace] {name}: done in {took:.1f} s", file=self.stream, flush=True)


class PlainProgress(_Phases):
    """A line on `stream` every `every` seconds (for logs and pipes)."""

    def __init__(self, stream: IO[str] | None = None, every: float = PLAIN_EVERY) -> None:
        self.stream = stream or sys.stderr
        self.every = every
        self._next = time.monotonic() + every
        self._told = False

    def __call__(self, stats: RunStats, live: Live) -> None:
        if live.first_violation is not None and not self._told:  # at once, not every 5 s
            self._told = True
            print(violation_line(live), file=self.stream, flush=True)
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        total = f"/{stats.rounds_planned}" if stats.rounds_planned else ""
        left = _left(stats)
        print(
            f"[mmrace] round {stats.rounds}{total}  {_facts(stats, live)}"
            + (f"  {left}" if left else ""),
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        pass


class RichProgress(_Phases):
    """A rich progress bar: rounds (of the total or of the time budget), ops, rate, violations."""

    def __init__(self, stats_total: int | None, time_budget: float | None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        self._progress = Progress(
            TextColumn("[bold]round {task.fields[rounds]:,}[/]"),
            BarColumn(),
            TextColumn("{task.fields[facts]}"),
            TextColumn("{task.fields[left]}"),
            console=_console(),
            transient=True,
        )
        self._budget = time_budget
        self.stream = sys.stderr
        total: Any = stats_total if stats_total else (time_budget or None)
        self._task = self._progress.add_task("run", total=total, facts="", left="", rounds=0)
        self._progress.start()
        self._next = 0.0
        self._told = False

    def __call__(self, stats: RunStats, live: Live) -> None:
        if live.first_violation is not None and not self._told:
            self._told = True
            self._progress.console.print(violation_line(live))
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + RICH_EVERY
        done = stats.rounds
        if not stats.rounds_planned and self._budget:
            done = int(min(stats.elapsed, self._budget))
        self._progress.update(
            self._task,
            completed=done,
            facts=_facts(stats, live),
            left=_left(stats),
            rounds=stats.rounds,
        )

    def close(self) -> None:
        self._progress.stop()


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def make_progress(enabled: bool, rounds: int | None, time_budget: float | None) -> Any:
    """Rich on a terminal, plain lines otherwise, nothing when disabled."""
    if not enabled:
        return None
    if sys.stderr.isatty():
        return RichProgress(rounds, time_budget)
    return PlainProgress()
