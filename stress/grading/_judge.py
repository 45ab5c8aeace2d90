"""The run's verdict: the checker's answer, the grades and the harness's problems, combined.

VIOLATION when the checker found no atomic order or a round's outcome fails the strict reading
(FORBIDDEN, or UNSPECIFIED: a hole in the workload); else UNKNOWN when anything kept the run
from judging (checker timeout, harness problems, an interrupted run, ungradable rounds, no
round at all); else OK. The vocabulary and exit codes are `stress.verdict`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from stress.grading._outcomes import UNKNOWN, UNSPECIFIED, Grader
from stress.verdict import Verdict
from workloads import FORBIDDEN


@attrs.frozen
class CheckSummary:
    """The checker's answer in plain values (JSON-able)."""

    verdict: Verdict
    reason: str
    seconds: float
    operations: int
    partitions: int
    counterexample: str | None = None
    details: dict[str, Any] | None = None


@attrs.frozen
class Judgement:
    verdict: Verdict
    reasons: tuple[str, ...]
    check: CheckSummary

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code


def judge(
    check: CheckSummary,
    grader: Grader | None,
    *,
    rounds: int,
    problems: Sequence[str] = (),
    problem_count: int | None = None,
    interrupted: str | None = None,
) -> Judgement:
    """Combine the checker, the grades and the run's problems into the run's verdict."""
    violations, unknowns = [], []
    if check.verdict is Verdict.VIOLATION:
        violations.append(f"linearizability: {check.reason or 'no atomic order explains it'}")
    elif check.verdict is not Verdict.OK:
        unknowns.append(f"checker could not judge: {check.reason}")
    rows = grader.rows("strict") if grader else []
    counts = {grade: 0 for grade in (FORBIDDEN, UNSPECIFIED, UNKNOWN)}
    for row in rows:
        if row["grade"] in counts:
            counts[row["grade"]] += row["count"]
    if counts[FORBIDDEN]:
        first = min(r["first_round"] for r in rows if r["grade"] == FORBIDDEN)
        violations.append(f"grading: {counts[FORBIDDEN]} round(s) FORBIDDEN (first: round {first})")
    if counts[UNSPECIFIED]:
        violations.append(f"grading: {counts[UNSPECIFIED]} round(s) match no grade of the workload")
    if counts[UNKNOWN]:
        unknowns.append(f"grading: {counts[UNKNOWN]} round(s) could not be judged")
    count = len(problems) if problem_count is None else problem_count
    if count:
        unknowns.append(f"{count} harness problem(s), first: {problems[0]}")
    if interrupted:
        unknowns.append(f"run incomplete: {interrupted}")
    if rounds == 0:
        unknowns.append("no round ran")
    if violations:
        return Judgement(Verdict.VIOLATION, tuple(violations + unknowns), check)
    if unknowns:
        return Judgement(Verdict.UNKNOWN, tuple(unknowns), check)
    return Judgement(Verdict.OK, (), check)
