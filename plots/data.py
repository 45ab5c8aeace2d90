"""Plain values the plot functions draw: small frozen attrs classes, no file formats.

The plot functions (`plots.race`, `plots.timeline`, ...) take these values and a matplotlib
Axes, nothing else; `stress.report` builds them from a judged run directory, a sweep file or a
mutants file. Keeping the two apart lets a test build data by hand and lets the plots outlive
changes in the files they are read from. Nothing in `plots` imports the rest of mmrace.
"""

from __future__ import annotations

import attrs

# Outcome classes of a racing call, in drawing order.
WON = "won"
EEXIST = "EEXIST"
OTHER = "other"
OUTCOME_CLASSES = (WON, EEXIST, OTHER)

# Grades of an outcome pattern (the workloads' jcstress-style grades).
GRADES = ("ACCEPTABLE", "INTERESTING", "FORBIDDEN")


@attrs.frozen
class Latencies:
    """Per-call latencies of the racing calls, by outcome class, in units of ``clock``."""

    won: tuple[int, ...] = ()
    eexist: tuple[int, ...] = ()
    other: tuple[int, ...] = ()
    clock: str = "ns"  # "ns" (monotonic nanoseconds) or "steps" (controlled scheduler)

    def by_class(self) -> dict[str, tuple[int, ...]]:
        """The three samples keyed by outcome class name."""
        return {WON: self.won, EEXIST: self.eexist, OTHER: self.other}


@attrs.frozen
class LockWaits:
    """Time calls spent waiting for the target's lock, in nanoseconds.

    ``measured`` is False when the values are an estimate derived from latencies (a call's
    latency minus the fastest call of the same kind), True when the harness recorded them.
    """

    waits: tuple[int, ...]
    measured: bool
    clock: str = "ns"


@attrs.frozen
class OutcomeRow:
    """One row of an outcome histogram: a pattern, how often it occurred, and its grade."""

    outcome: str
    count: int
    grade: str  # one of GRADES (or UNSPECIFIED, UNKNOWN), "" when ungraded
    description: str = ""


@attrs.frozen
class TimelineCall:
    """One call on a timeline: a bar from invocation to response (``ret`` None: pending).

    ``order`` is the call's position in the (partial) linearization, None when it is not in
    it; ``conflict`` marks the calls the checker got stuck on, with the checker's ``reason``.
    """

    task: int
    label: str
    call: int
    ret: int | None
    order: int | None = None
    conflict: bool = False
    reason: str = ""
    outcome: str = ""  # outcome class (won / EEXIST / other) for rounds without a checker verdict


@attrs.frozen
class Timeline:
    """Calls to draw one row per task; ``title`` says what they are (counterexample, round)."""

    title: str
    calls: tuple[TimelineCall, ...]
    clock: str = "ns"


@attrs.frozen
class LatencyOverTime:
    """Latency of completed racing calls across the run: per bin of ``bin_rounds`` rounds,
    (first round, calls, mean latency, max latency), in units of ``clock``."""

    bin_rounds: int
    bins: tuple[tuple[int, int, float, int], ...]
    clock: str = "ns"


@attrs.frozen
class RunData:
    """Everything the per-run plots need, in plain values."""

    title: str  # e.g. "probe-same-range on model, 8 tasks, 200 rounds"
    target: str
    tasks: int
    rounds: int
    wins: tuple[int, ...]  # successful racing mmaps per task, index = task
    latencies: Latencies
    lock_waits: LockWaits | None
    outcomes: tuple[OutcomeRow, ...]
    timeline: Timeline | None
    overlap_ratio: float | None = None  # share of rounds whose calls overlapped in time
    scheduler: str | None = None  # the target's scheduler ("trio", "random", "pct"), if any
    probes: int = 0  # racing MAP_FIXED_NOREPLACE calls
    lost: int = 0  # probes that failed with EEXIST
    in_flight: tuple[tuple[int, int], ...] = ()  # (most calls in flight at once, rounds)
    winner_rank: tuple[tuple[int, int], ...] = ()  # (winner's rank by call start, wins)
    latency_time: LatencyOverTime | None = None
    engine: str | None = None  # the kernel target's racer ("python", "native"), if known


@attrs.frozen
class SweepPoint:
    """One size of a sweep: ``tasks`` tasks raced for ``rounds`` rounds."""

    tasks: int
    rounds: int
    operations: int  # racing calls completed
    seconds: float  # wall time of the races
    overlap_ratio: float  # share of rounds whose calls overlapped in time (0..1)
    probes: int  # MAP_FIXED_NOREPLACE calls
    lost: int  # probes that failed with EEXIST
    verdict: str = "OK"
    # per repeat at this size: (p50, p90, p99) latency of the racing calls, in units of clock
    latency_percentiles: tuple[tuple[float, float, float], ...] = ()
    clock: str = "ns"
    repeats: int = 1

    @property
    def throughput(self) -> float:
        """Racing calls completed per second (0 when no time was measured)."""
        return self.operations / self.seconds if self.seconds > 0 else 0.0

    @property
    def lost_share(self) -> float:
        """Share of probes that lost (0 when there were none)."""
        return self.lost / self.probes if self.probes else 0.0


@attrs.frozen
class SweepData:
    """A sweep: one workload on one target at several task counts."""

    workload: str
    target: str
    seed: int
    points: tuple[SweepPoint, ...]


@attrs.frozen
class MutantResult:
    """A bug variant run under one scheduling strategy (from `mmrace mutants`).

    ``detected_at`` is the number of rounds it took to find the first violation, None when
    none was found within ``rounds``.
    """

    variant: str
    strategy: str  # "random", "pct", "noise", ...
    rounds: int
    detected_at: int | None


def jain_index(values: tuple[int, ...] | list[int]) -> float | None:
    """Jain's fairness index (sum x)^2 / (n * sum x^2): 1 = all equal, 1/n = one takes all.

    None when there is nothing to share (no values, or all zero).
    """
    squares = sum(v * v for v in values)
    if not values or squares == 0:
        return None
    return sum(values) ** 2 / (len(values) * squares)


# (target, scheduler) pairs known to make the race lopsided, with a note for the wins plot.
_SCHEDULER_NOTES = {
    ("model", "trio"): (
        "trio's scheduler runs each batch of ready tasks in order or reversed,\n"
        "so lock wins are bimodal: the first or the last task"
    ),
}


KERNEL_START_ORDER_NOTE = (
    "the harness starts the calls of a round in task order (python engine),\n"
    "so the first tasks started win most: wins reflect start order, not the kernel"
)


def scheduler_note(target: str, scheduler: str | None, engine: str | None = None) -> str | None:
    """A caveat about the target's scheduler (or the kernel racer's start order) for the wins
    plot, or None."""
    if target == "kernel" and (engine or "python") == "python":
        return KERNEL_START_ORDER_NOTE
    return _SCHEDULER_NOTES.get((target, scheduler or ""))
