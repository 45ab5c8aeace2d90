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
