"""Grading: each round's outcome graded by its workload (jcstress-style), and the run's verdict.

`grade_history` reads a run's history once, round by round (`RoundGrading`: one round at a
time, as a stream), and feeds a `Grader` (the outcome
histogram in the strict and compat readings) and `RaceStats` (the aggregates the report draws).
`judge` combines the checker's answer (`CheckSummary`), the grades and the harness's problems
into the run's `Judgement`, in the one verdict vocabulary of `stress.verdict`.
"""

from stress.grading._history import RoundGrading, grade_history
from stress.grading._judge import CheckSummary, Judgement, judge
from stress.grading._outcomes import (
    CLOBBERED,
    FALLBACK,
    LEFTOVER,
    MODES,
    UNKNOWN,
    UNSPECIFIED,
    Facts,
    Grader,
    RoundGrade,
    RoundResult,
    clobbered,
    double_win,
    facts,
    grade_round,
    leftovers,
    outcome,
    overlapped,
)
from stress.grading._stats import RaceStats, call_class

__all__ = [
    "CLOBBERED",
    "FALLBACK",
    "LEFTOVER",
    "MODES",
    "UNKNOWN",
    "UNSPECIFIED",
    "CheckSummary",
    "Facts",
    "Grader",
    "Judgement",
    "RaceStats",
    "RoundGrade",
    "RoundGrading",
    "RoundResult",
    "call_class",
    "clobbered",
    "double_win",
    "facts",
    "grade_history",
    "grade_round",
    "judge",
    "leftovers",
    "outcome",
    "overlapped",
]
