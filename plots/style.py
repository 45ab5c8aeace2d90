"""Shared colours and small helpers so every plot speaks the same visual language."""

from __future__ import annotations

from plots.data import EEXIST, OTHER, WON

# Outcome classes: a win is green, a lost probe orange, anything else grey.
OUTCOME_COLORS = {WON: "#2a9d55", EEXIST: "#e07b00", OTHER: "#7a7a7a"}

# Grades: acceptable green, interesting amber, forbidden red; ungraded grey.
GRADE_COLORS = {
    "ACCEPTABLE": "#2a9d55",
    "INTERESTING": "#e0a800",
    "FORBIDDEN": "#c62828",
    "UNSPECIFIED": "#8e44ad",
    "UNKNOWN": "#607d8b",
    "": "#9e9e9e",
}

# Timeline bars.
LINEARIZED_COLOR = "#3b6fb6"
CONFLICT_COLOR = "#c62828"
UNORDERED_COLOR = "#b0b0b0"

# Scheduling strategies of `mmrace mutants`, in legend order; others cycle through FALLBACK.
STRATEGY_COLORS = {"random": "#3b6fb6", "pct": "#c62828", "noise": "#2a9d55"}
FALLBACK_COLORS = ("#8e44ad", "#e07b00", "#16a085", "#7a7a7a")

NOTE_BOX = {"boxstyle": "round,pad=0.4", "facecolor": "#fff6d6", "edgecolor": "#e0a800"}


def scale_time(values: tuple[int, ...] | list[int], clock: str) -> tuple[list[float], str]:
    """Stamps or durations in a plot's unit, and the unit's name for axis labels.

    Nanoseconds are shown in microseconds; virtual steps (controlled scheduler) as steps.
    """
    if clock == "ns":
        return [v / 1000.0 for v in values], "µs"
    return [float(v) for v in values], "steps"


def strategy_color(strategy: str, index: int) -> str:
    """The colour of a scheduling strategy (stable for the known ones)."""
    return STRATEGY_COLORS.get(strategy, FALLBACK_COLORS[index % len(FALLBACK_COLORS)])
