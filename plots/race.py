"""Per-run plots: who won, how fast, how long the lock made callers wait, which outcomes.

Each function draws on the Axes it is given and returns it; it never creates figures or
writes files (that is `plots.save`).
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING

from plots.data import (
    OUTCOME_CLASSES,
    Latencies,
    LatencyOverTime,
    LockWaits,
    OutcomeRow,
    jain_index,
)
from plots.style import GRADE_COLORS, NOTE_BOX, OUTCOME_COLORS, scale_time

if TYPE_CHECKING:
    from matplotlib.axes import Axes


MANY_BARS = 128  # more tasks than this: drawn as one filled step curve


def wins_per_task(ax: Axes, wins: tuple[int, ...], note: str | None = None) -> Axes:
    """Bars of successful probes per task, the fair share, and Jain's fairness index.

    ``note`` (e.g. `plots.data.scheduler_note`) is shown in a box when the target's scheduler
    is known to skew the wins, so a lopsided picture is not mistaken for a bug.
    """
    tasks = list(range(len(wins)))
    if len(wins) <= MANY_BARS:
        ax.bar(tasks, wins, color=OUTCOME_COLORS["won"], label="wins", width=0.8)
    else:  # one artist for thousands of tasks, not a patch per task
        edges = [t - 0.5 for t in range(len(wins) + 1)]
        ax.stairs(wins, edges, fill=True, color=OUTCOME_COLORS["won"], label="wins")
    if wins:
        fair = sum(wins) / len(wins)
        ax.axhline(fair, color="#333333", linestyle="--", linewidth=1, label="fair share")
    index = jain_index(wins)
    jain = "n/a (no wins)" if index is None else f"{index:.3f}"
    ax.set_title(f"Wins per task (Jain's fairness index {jain})")
    ax.set_xlabel("task")
    ax.set_ylabel("wins (successful probes)")
    if len(tasks) <= 32:
        ax.set_xticks(tasks)
    ax.set_xlim(-0.6, max(len(wins), 1) - 0.4)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    top = max([*wins, 1])
    ax.set_ylim(0, top * 1.2)  # headroom for the legend
    if note:
        ax.text(
            0.02, 0.97, note, transform=ax.transAxes, va="top", ha="left", fontsize=8, bbox=NOTE_BOX
        )
        ax.set_ylim(0, top * 1.45)
    return ax


def percentile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0..100) of a sorted, non-empty list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_cdf(ax: Axes, latencies: Latencies) -> Axes:
    """Empirical CDF of call latency per outcome class, with p50 and p99 marked on each curve."""
    drawn: list[float] = []
    unit = scale_time([], latencies.clock)[1]
    for name in OUTCOME_CLASSES:
        sample = sorted(scale_time(latencies.by_class()[name], latencies.clock)[0])
        if not sample:
            continue
        drawn += sample
        n = len(sample)
        ys = [(i + 1) / n for i in range(n)]
        color = OUTCOME_COLORS[name]
        p50, p99 = percentile(sample, 50), percentile(sample, 99)
        ax.step(
            sample,
            ys,
            where="post",
            color=color,
            label=f"{name} (n={n}, p50 {p50:.1f} {unit}, p99 {p99:.1f} {unit})",
        )
        ax.plot([p50], [0.5], marker="o", color=color, linestyle="none")
        ax.plot([p99], [0.99], marker="^", color=color, linestyle="none")
    ax.axhline(0.5, color="#bbbbbb", linewidth=0.8, linestyle=":")
    ax.axhline(0.99, color="#bbbbbb", linewidth=0.8, linestyle=":")
    ax.plot([], [], marker="o", color="#555555", linestyle="none", label="p50")
    ax.plot([], [], marker="^", color="#555555", linestyle="none", label="p99")
    if drawn:
        low, high = min(drawn), max(drawn)
        if low > 0 and high / low > 100:  # a long tail: log scale keeps the body readable
            ax.set_xscale("log")
    else:
        ax.text(0.5, 0.5, "no completed racing calls", transform=ax.transAxes, ha="center")
    ax.set_ylim(0, 1.02)
    ax.set_title("Latency of racing calls by outcome (CDF)")
    ax.set_xlabel(f"latency ({unit})")
    ax.set_ylabel("share of calls")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, ncol=2)
    return ax


def lock_waits(ax: Axes, waits: LockWaits) -> Axes:
    """Histogram of the time calls waited for the target's lock (measured or estimated)."""
    sample, unit = scale_time(waits.waits, waits.clock)
    kind = "measured" if waits.measured else "estimated: latency − fastest call of its kind"
    if sample:
        ax.hist(sample, bins=hist_bins(sample), color="#3b6fb6", label="calls")
        mean = sum(sample) / len(sample)
        ax.axvline(
            mean, color="#333333", linestyle="--", linewidth=1, label=f"mean {mean:.1f} {unit}"
        )
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no lock waits recorded", transform=ax.transAxes, ha="center")
    ax.set_title(f"Lock wait time ({kind})")
    ax.set_xlabel(f"wait ({unit})")
    ax.set_ylabel("calls")
    return ax


def hist_bins(sample: list[float], most: int = 40) -> int | list[float]:
    """Histogram bins for ``sample``: integer-aligned (one value per bin, or a whole number of
    values per bin) when every value is an integer, so integer data shows no comb of empty
    bins; else a count that grows with the sample."""
    if not sample:
        return 1
    if all(float(v).is_integer() for v in sample):
        low, high = int(min(sample)), int(max(sample))
        width = max(1, math.ceil((high - low + 1) / most))
        edges = list(range(low, high + width + 1, width))
        return [e - 0.5 for e in edges]
    return min(most, max(5, len(sample) // 5))


def _wrap(text: str, width: int = 34) -> str:
    """``text`` wrapped on word boundaries (long tokens split too), at most three lines."""
    lines = textwrap.wrap(text, width, break_long_words=True) or [""]
    if len(lines) > 3:
        lines = lines[:3]
        lines[-1] = lines[-1][: width - 1] + "…"
    return "\n".join(lines)


MAX_OUTCOME_ROWS = 20


def capped_rows(
    rows: tuple[OutcomeRow, ...], most: int = MAX_OUTCOME_ROWS
) -> tuple[OutcomeRow, ...]:
    """At most ``most`` rows: the first ``most - 1`` and one that sums up the rest (their
    worst grade, FORBIDDEN before INTERESTING before ACCEPTABLE, so no red bar disappears)."""
    if len(rows) <= most:
        return rows
    rest = rows[most - 1 :]
    order = ("FORBIDDEN", "UNSPECIFIED", "UNKNOWN", "INTERESTING", "ACCEPTABLE", "")
    grade = min((r.grade for r in rest), key=lambda g: order.index(g) if g in order else 9)
    summed = OutcomeRow(f"{len(rest)} other outcomes", sum(r.count for r in rest), grade)
    return (*rows[: most - 1], summed)


def outcome_histogram(ax: Axes, rows: tuple[OutcomeRow, ...]) -> Axes:
    """Horizontal bars: how many rounds ended in each outcome pattern, coloured by grade.

    Each bar is labelled with the outcome key and, below it, the grade's description (one key
    can be graded differently, e.g. by whether the first caller won).
    """
    rows = capped_rows(rows)
    labels = [
        _wrap(row.outcome) + ("" if not row.description else "\n" + _wrap(row.description))
        for row in rows
    ]
    counts = [row.count for row in rows]
    colors = [GRADE_COLORS.get(row.grade, GRADE_COLORS[""]) for row in rows]
    positions = list(range(len(rows)))
    ax.barh(positions, counts, color=colors)
    ax.set_yticks(positions, labels, fontsize=8)
    ax.invert_yaxis()  # most frequent (first) on top
    for pos, count in zip(positions, counts, strict=True):
        ax.text(count, pos, f" {count}", va="center", fontsize=8)
    if counts:
        ax.set_xlim(0, max(max(counts), 1) * 1.15)
    else:
        ax.text(0.5, 0.5, "no graded rounds", transform=ax.transAxes, ha="center")
    present = []
    for row in rows:
        if row.grade not in present:
            present.append(row.grade)
    from matplotlib.patches import Patch

    handles = [
        Patch(color=GRADE_COLORS.get(grade, GRADE_COLORS[""]), label=grade or "ungraded")
        for grade in present
    ]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="grade")
    ax.set_title("Outcomes per round, by grade")
    ax.set_xlabel("rounds")
    ax.set_ylabel("outcome")
    return ax


def in_flight(ax: Axes, histogram: tuple[tuple[int, int], ...], tasks: int) -> Axes:
    """Rounds by the most racing calls in flight at once: a race that raced has its mass near
    the task count; a mass at 1 means the calls ran one after the other."""
    if histogram:
        xs = [k for k, _ in histogram]
        ax.bar(xs, [n for _, n in histogram], width=0.8 if len(xs) < 64 else 1.0, color="#3b6fb6")
        ax.axvline(tasks, color="#333333", linestyle="--", linewidth=1, label=f"{tasks} tasks")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_xlim(0.4, max(max(xs), tasks) + 0.6)
    else:
        ax.text(0.5, 0.5, "no racing round recorded", transform=ax.transAxes, ha="center")
    ax.set_title("Calls in flight at once, per round (most at any instant)")
    ax.set_xlabel("calls in flight at once")
    ax.set_ylabel("rounds")
    return ax


def winner_rank(ax: Axes, histogram: tuple[tuple[int, int], ...], tasks: int) -> Axes:
    """Wins by the winner's rank among the round's callers by call start (1 = started first):
    a spike at 1 means the first caller always wins, the race decided by start order."""
    if histogram:
        xs = [k + 1 for k, _ in histogram]
        counts = [n for _, n in histogram]
        ax.bar(xs, counts, width=0.8 if len(xs) < 64 else 1.0, color=OUTCOME_COLORS["won"])
        total = sum(counts)
        first = sum(n for k, n in histogram if k == 0)
        ax.set_title(
            f"Winner's rank among the callers by call start ({100 * first / total:.0f}% "
            "won by the first)"
        )
        ax.set_xlim(0.4, max(max(xs), 1) + 0.6)
    else:
        ax.text(0.5, 0.5, "no winning probe", transform=ax.transAxes, ha="center")
        ax.set_title("Winner's rank among the callers by call start")
    ax.set_xlabel("rank of the winning call (1 = invoked first)")
    ax.set_ylabel("wins")
    return ax


def latency_over_time(ax: Axes, data: LatencyOverTime) -> Axes:
    """Mean and maximum latency of the racing calls per bin of rounds, across the run: drift
    (a warming cache, a slowing target) shows as a slope."""
    means, unit = scale_time([round(b[2]) for b in data.bins], data.clock)
    tops, _ = scale_time([b[3] for b in data.bins], data.clock)
    xs = [b[0] + data.bin_rounds / 2 for b in data.bins]
    if xs:
        ax.plot(xs, means, marker="o", markersize=3, color="#3b6fb6", label="mean")
        ax.plot(xs, tops, marker="^", markersize=3, color="#c62828", linestyle=":", label="max")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        if min(means) > 0 and max(tops) / min(means) > 100:
            ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no completed racing calls", transform=ax.transAxes, ha="center")
    per = "round" if data.bin_rounds == 1 else f"{data.bin_rounds} rounds"
    ax.set_title(f"Latency of racing calls over the run (per {per})")
    ax.set_xlabel("round")
    ax.set_ylabel(f"latency ({unit})")
    return ax
