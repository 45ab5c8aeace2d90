"""The timeline of a history: one row per task, one bar per call from invocation to response.

For a counterexample the bars say what the checker found: calls in the longest partial
linearization are blue and numbered in linearization order, the calls it got stuck on are red,
the rest grey; a pending call (no response) runs to the right edge, hatched.
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.patches import Patch

from plots.data import Timeline, TimelineCall
from plots.style import CONFLICT_COLOR, LINEARIZED_COLOR, UNORDERED_COLOR


def _color(call: TimelineCall) -> str:
    if call.conflict:
        return CONFLICT_COLOR
    if call.order is not None:
        return LINEARIZED_COLOR
    return UNORDERED_COLOR


def timeline(ax: Axes, data: Timeline) -> Axes:
    """Draw ``data`` as a task-by-time chart (time since the first invocation)."""
    calls = data.calls
    factor, unit = (1000.0, "µs") if data.clock == "ns" else (1.0, "steps")
    xlabel = f"time since first call ({unit})"
    if not calls:
        ax.text(0.5, 0.5, "no calls", transform=ax.transAxes, ha="center")
        ax.set_title(data.title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("task")
        return ax
    origin = min(c.call for c in calls)
    last = max(max(c.call, c.ret if c.ret is not None else c.call) for c in calls)
    span_us = max((last - origin) / factor, 1e-3)
    pending_end = span_us * 1.08  # pending calls run past the last response
    tasks = sorted({c.task for c in calls})
    row = {task: i for i, task in enumerate(tasks)}
    height = 0.5
    any_pending = False
    for c in calls:
        start = (c.call - origin) / factor
        end = pending_end if c.ret is None else (c.ret - origin) / factor
        width = max(end - start, span_us * 0.004)  # a zero-length call stays visible
        any_pending |= c.ret is None
        ax.broken_barh(
            [(start, width)],
            (row[c.task] - height / 2, height),
            facecolors=_color(c),
            edgecolors="#222222" if c.conflict else "none",
            linewidth=1.5 if c.conflict else 0,
            hatch="//" if c.ret is None else None,
        )
        text = c.label if c.order is None else f"{c.order}. {c.label}"
        ax.text(
            start,
            row[c.task] - height / 2 - 0.04,  # above the bar: the y axis is inverted
            text,
            fontsize=7,
            va="bottom",
            ha="left",
            color=CONFLICT_COLOR if c.conflict else "#222222",
            clip_on=True,
        )
    ax.set_yticks(range(len(tasks)), [f"task {t}" for t in tasks])
    ax.set_ylim(len(tasks) - 0.5, -0.8)  # task 0 on top
    ax.set_xlim(-span_us * 0.02, pending_end * 1.02 if any_pending else span_us * 1.25)
    handles = [
        Patch(color=LINEARIZED_COLOR, label="linearized (number = order)"),
        Patch(facecolor=CONFLICT_COLOR, edgecolor="#222222", label="conflicting call"),
        Patch(color=UNORDERED_COLOR, label="not linearized"),
    ]
    if any_pending:
        handles.append(Patch(facecolor="white", edgecolor="#222222", hatch="//", label="pending"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_title(data.title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("task")
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    return ax
