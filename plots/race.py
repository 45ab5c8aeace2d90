"""Per-run plots: who won, how fast, how long the lock made callers wait, which outcomes.

Each function draws on the Axes it is given and returns it; it never creates figures or
writes files (that is `plots.save`).
"""

from __future__ import annotations

import math

from matplotlib.axes import Axes
from matplotlib.patches import Patch

from plots.data import (
    OUTCOME_CLASSES,
    Latencies,
    LockWaits,
    OutcomeRow,
    jain_index,
)
from plots.style import GRADE_COLORS, NOTE_BOX, OUTCOME_COLORS, scale_time


def wins_per_task(ax: Axes, wins: tuple[int, ...], note: str | None = None) -> Axes:
    """Bars of successful probes per task, the fair share, and Jain's fairness index.

    ``note`` (e.g. `plots.data.scheduler_note`) is shown in a box when the target's scheduler
    is known to skew the wins, so a lopsided picture is not mistaken for a bug.
    """
    tasks = list(range(len(wins)))
    ax.bar(tasks, wins, color=OUTCOME_COLORS["won"], label="wins", width=0.8)
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
    ax.legend(loc="upper right")
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
    ax.legend(loc="lower right", fontsize=8)
    return ax


def lock_waits(ax: Axes, waits: LockWaits) -> Axes:
    """Histogram of the time calls waited for the target's lock (measured or estimated)."""
    sample, unit = scale_time(waits.waits, waits.clock)
    kind = "measured" if waits.measured else "estimated: latency − fastest call of its kind"
    if sample:
        ax.hist(sample, bins=min(40, max(5, len(sample) // 5)), color="#3b6fb6", label="calls")
        mean = sum(sample) / len(sample)
        ax.axvline(
            mean, color="#333333", linestyle="--", linewidth=1, label=f"mean {mean:.1f} {unit}"
        )
        ax.legend(loc="upper right")
    else:
        ax.text(0.5, 0.5, "no lock waits recorded", transform=ax.transAxes, ha="center")
    ax.set_title(f"Lock wait time ({kind})")
    ax.set_xlabel(f"wait ({unit})")
    ax.set_ylabel("calls")
    return ax


def _shorten(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def outcome_histogram(ax: Axes, rows: tuple[OutcomeRow, ...]) -> Axes:
    """Horizontal bars: how many rounds ended in each outcome pattern, coloured by grade.

    Each bar is labelled with the outcome key and, below it, the grade's description (one key
    can be graded differently, e.g. by whether the first caller won).
    """
    labels = [
        row.outcome if not row.description else f"{row.outcome}\n{_shorten(row.description)}"
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
