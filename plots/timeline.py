"""The timeline of a history: one row per task, one bar per call from invocation to response.

For a counterexample the bars say what the checker found: calls in the longest partial
linearization are blue and numbered in linearization order, the calls it got stuck on are red,
the rest grey. Without a verdict (a sample round) bars take their outcome's colour (won green,
EEXIST orange). A pending call (no response) runs to the right edge, hatched.

At most `MAX_ROWS` tasks are drawn (the stuck ones first, then by first invocation) and the
title says how many are hidden, so a 4096-task run gives a picture of the usual size. When
every call does the same thing the operation is said once in the title and the bars carry
only their results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plots.data import Timeline, TimelineCall
from plots.style import CONFLICT_COLOR, LINEARIZED_COLOR, OUTCOME_COLORS, UNORDERED_COLOR

if TYPE_CHECKING:
    from matplotlib.axes import Axes


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


MAX_ROWS = 32


def shown_tasks(data: Timeline, limit: int = MAX_ROWS) -> list[int]:
    """The tasks drawn (at most ``limit``): tasks with a stuck call first, then the others by
    their first invocation; returned in task order."""
    first: dict[int, tuple[bool, int]] = {}
    for c in data.calls:
        key = (not c.conflict, c.call)
        first[c.task] = min(first.get(c.task, key), key)
    chosen = sorted(first, key=lambda t: (first[t], t))[:limit]
    return sorted(chosen)


def _split(label: str) -> tuple[str, str]:
    """``"mmap 0x1000+0x1000 → EEXIST"`` -> (operation, result)."""
    op, sep, result = label.partition(" → ")
    return (op, result) if sep else (label, "")


def timeline(ax: Axes, data: Timeline, max_rows: int = MAX_ROWS) -> Axes:
    """Draw ``data`` as a task-by-time chart (time since the first invocation)."""
    factor, unit = (1000.0, "µs") if data.clock == "ns" else (1.0, "steps")
    xlabel = f"time since first call ({unit})"
    tasks = shown_tasks(data, max_rows)
    hidden = len({c.task for c in data.calls}) - len(tasks)
    keep = set(tasks)
    calls = tuple(c for c in data.calls if c.task in keep)
    title = data.title
    if hidden > 0:
        title += f"\n({len(tasks)} tasks shown, {hidden} more not drawn)"
    ops = {_split(c.label)[0] for c in calls}
    same_op = len(ops) == 1 and all(_split(c.label)[1] for c in calls)
    if same_op:
        title += f"\nevery call: {next(iter(ops))}"
    if not calls:
        ax.text(0.5, 0.5, "no calls", transform=ax.transAxes, ha="center")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("task")
        return ax
    origin = min(c.call for c in calls)
    last = max(max(c.call, c.ret if c.ret is not None else c.call) for c in calls)
    span_us = max((last - origin) / factor, 1e-3)
    pending_end = span_us * 1.08  # pending calls run past the last response
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
        label_text = _split(c.label)[1] if same_op else c.label
        text = label_text if c.order is None else f"{c.order}. {label_text}"
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
    from matplotlib.patches import Patch

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
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("task")
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    return ax
