"""Sweep plots: how throughput, overlap and contention change with the number of tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plots.data import SweepPoint

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _task_axis(ax: Axes, points: tuple[SweepPoint, ...]) -> list[int]:
    tasks = [p.tasks for p in points]
    if tasks and max(tasks) / max(min(tasks), 1) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(tasks, [str(t) for t in tasks])
    ax.set_xlabel("tasks")
    return tasks


def throughput_overlap(ax: Axes, points: tuple[SweepPoint, ...]) -> tuple[Axes, Axes]:
    """Throughput (left axis) and overlap ratio (right axis, 0..1) against the task count.

    An overlap ratio near 0 means the calls of a round hardly ever overlapped in time: the race
    did not really race, whatever the verdict says. Returns (left, right) axes.
    """
    tasks = _task_axis(ax, points)
    (left,) = ax.plot(
        tasks, [p.throughput for p in points], marker="o", color="#3b6fb6", label="throughput"
    )
    ax.set_ylabel("throughput (calls/s)")
    ax.set_ylim(bottom=0)
    right = ax.twinx()
    (over,) = right.plot(
        tasks,
        [p.overlap_ratio for p in points],
        marker="s",
        linestyle="--",
        color="#e07b00",
        label="overlap ratio",
    )
    right.set_ylim(0, 1.05)
    right.set_ylabel("overlap ratio (rounds whose calls overlapped)")
    ax.legend(handles=[left, over], loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    ax.set_title("Throughput and overlap against task count")
    return ax, right


def contention(ax: Axes, points: tuple[SweepPoint, ...]) -> Axes:
    """Share of MAP_FIXED_NOREPLACE probes that lost (EEXIST) against the task count.

    The reference curve (n-1)/n is what one winner per round gives when every task probes the
    same range.
    """
    tasks = _task_axis(ax, points)
    ax.plot(
        tasks,
        [(t - 1) / t for t in tasks],
        linewidth=6,
        alpha=0.35,
        color="#7a7a7a",
        label="one winner per round: (n−1)/n",
    )
    ax.plot(tasks, [p.lost_share for p in points], marker="o", color="#c62828", label="probes lost")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of probes that lost (EEXIST)")
    ax.set_title("Contention against task count")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    return ax


PERCENTILES = ("p50", "p90", "p99")
_PERCENTILE_COLORS = ("#3b6fb6", "#e07b00", "#c62828")


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def latency_percentiles(ax: Axes, points: tuple[SweepPoint, ...]) -> Axes:
    """Latency percentiles of the racing calls against the task count: the median over the
    repeats at each size, with a bar from the lowest to the highest repeat."""
    from plots.style import scale_time

    shown = [p for p in points if p.latency_percentiles]
    _task_axis(ax, tuple(shown) if shown else points)
    unit = scale_time([], shown[0].clock if shown else "ns")[1]
    for k, (name, color) in enumerate(zip(PERCENTILES, _PERCENTILE_COLORS, strict=True)):
        xs, mids, lows, highs = [], [], [], []
        for p in shown:
            values = scale_time([round(v[k]) for v in p.latency_percentiles], p.clock)[0]
            mid = median(values)
            xs.append(p.tasks)
            mids.append(mid)
            lows.append(mid - min(values))
            highs.append(max(values) - mid)
        ax.errorbar(xs, mids, yerr=[lows, highs], marker="o", capsize=3, color=color, label=name)
    if not shown:
        ax.text(0.5, 0.5, "no latencies recorded", transform=ax.transAxes, ha="center")
    repeats = max([p.repeats for p in shown] + [1])
    ax.set_title(
        "Latency percentiles against task count"
        + (f" (median of {repeats} repeats, bars: min–max)" if repeats > 1 else "")
    )
    ax.set_ylabel(f"latency ({unit})")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax
