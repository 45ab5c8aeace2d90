"""The timeline of a history: one row per task, one bar per call from invocation to response.

For a counterexample the bars say what the checker found: calls in the longest partial
linearization are blue and numbered in linearization order, the calls it got stuck on are red,
the rest grey. Without a verdict (a sample round) bars take their outcome's colour (won green,
EEXIST orange). A pending call (no response) runs to the right edge, hatched.
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.patches import Patch

from plots.data import Timeline, TimelineCall
from plots.style import CONFLICT_COLOR, LINEARIZED_COLOR, OUTCOME_COLORS, UNORDERED_COLOR


def _category(call: TimelineCall) -> tuple[str, str]:
    """(legend label, colour) of a call's bar."""
    if call.conflict:
        return "conflicting call", CONFLICT_COLOR
    if call.order is not None:
        return "linearized (number = order)", LINEARIZED_COLOR
    if call.outcome in OUTCOME_COLORS:
        return call.outcome, OUTCOME_COLORS[call.outcome]
    return "not linearized", UNORDERED_COLOR


_LEGEND_ORDER = {
    "linearized (number = order)": 0,
    "conflicting call": 1,
    "not linearized": 2,
    "won": 3,
    "EEXIST": 4,
    "other": 5,
}


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
    seen: dict[str, str] = {}
    for c in calls:
        label, color = _category(c)
        seen.setdefault(label, color)
        start = (c.call - origin) / factor
        end = pending_end if c.ret is None else (c.ret - origin) / factor
        width = max(end - start, span_us * 0.004)  # a zero-length call stays visible
        any_pending |= c.ret is None
        ax.broken_barh(
            [(start, width)],
            (row[c.task] - height / 2, height),
            facecolors=color,
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
        Patch(
            facecolor=color,
            edgecolor="#222222" if color == CONFLICT_COLOR else color,
            label=label,
        )
        for label, color in sorted(seen.items(), key=lambda item: _LEGEND_ORDER.get(item[0], 9))
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
