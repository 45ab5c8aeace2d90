"""The run's verdict: the checker's answer, the grades and the harness's problems, combined.

VIOLATION when the checker found no atomic order or a round's outcome fails the strict reading
(FORBIDDEN, or UNSPECIFIED: a hole in the workload); else UNKNOWN when anything kept the run
from judging (checker timeout, harness problems, an interrupted run, ungradable rounds, no
round at all, a race workload in which no round really raced, an exhaustive search that was
not complete); else OK. An OK of a complete exhaustive search says what it covers: no
violation in any schedule up to K preemptions. The vocabulary and exit codes are
`stress.verdict`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from stress.errors import counted
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
    racing_rounds: int = 0,
    contested_rounds: int | None = None,
    no_race_hint: str = "",
    exploration: dict[str, Any] | None = None,
) -> Judgement:
    """Combine the checker, the grades and the run's problems into the run's verdict.

    `racing_rounds`: rounds in which two or more tasks had calls to race; `contested_rounds`:
    rounds in which a winning call overlapped a competing one (the harness's `contested`). When
    rounds raced and none was contested the run verified nothing about the race: UNKNOWN,
    saying why and what to try (`no_race_hint`). `exploration`: the exhaustive search's account
    (`stress.harness._explore.Explorer.to_json`)."""
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
        violations.append(
            f"grading: {counted(counts[FORBIDDEN], 'round')} FORBIDDEN (first: round {first})"
        )
    if counts[UNSPECIFIED]:
        violations.append(
            f"grading: {counted(counts[UNSPECIFIED], 'round')} matching no grade of the workload"
        )
    if counts[UNKNOWN]:
        unknowns.append(f"grading: {counted(counts[UNKNOWN], 'round')} could not be judged")
    count = len(problems) if problem_count is None else problem_count
    if count:
        unknowns.append(f"{counted(count, 'harness problem')}, first: {problems[0]}")
    if interrupted:
        unknowns.append(f"run incomplete: {interrupted}")
    if rounds == 0:
        unknowns.append("no round ran")
    elif racing_rounds and contested_rounds == 0:
        unknowns.append(no_race_message(racing_rounds, no_race_hint))
    search = exploration if exploration is not None and "complete" in exploration else None
    if search is not None and not violations and not search["complete"]:
        unknowns.append(incomplete_message(search))
    if violations:
        return Judgement(Verdict.VIOLATION, tuple(violations + unknowns), check)
    if unknowns:
        return Judgement(Verdict.UNKNOWN, tuple(unknowns), check)
    if search is not None:
        return Judgement(Verdict.OK, (exploration_claim(search),), check)
    return Judgement(Verdict.OK, (), check)


def no_race_message(racing_rounds: int, hint: str = "") -> str:
    """Why a run whose rounds never really raced is no verification, and what to try."""
    return (
        f"no round really raced: in none of the {counted(racing_rounds, 'round')} that raced "
        "tasks did a winning call overlap a competing call in time, so the run says nothing "
        "about the race "
        f"({hint or 'try more rounds or tasks, or a controlled scheduler'})"
    )


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def exploration_claim(exploration: dict[str, Any]) -> str:
    """What an OK of a complete exhaustive search means, exactly."""
    k = int(exploration["preemptions"])
    plans = exploration.get("round_plans") or []
    pruned = int(exploration.get("pruned", 0))
    cut = f", {pruned:,} of them cut short at a state already explored" if pruned else ""
    return (
        f"no violation in any schedule up to {_plural(k, 'preemption')}: the search was complete "
        f"for the bound ({_plural(int(exploration['schedules']), 'schedule')}{cut}, "
        f"{_plural(len(plans), 'round plan')})"
    )


def incomplete_message(exploration: dict[str, Any]) -> str:
    """Why an exhaustive search without a violation is no proof, and what to try."""
    k = int(exploration["preemptions"])
    why = exploration.get("stopped") or (
        f"the cap of {int(exploration['max_schedules']):,} schedules per round plan was reached"
    )
    return (
        f"the exhaustive search was not complete ({why}): no violation in the "
        f"{_plural(int(exploration['schedules']), 'schedule')} run, but not every schedule up to "
        f"{_plural(k, 'preemption')} was (raise --max-schedules or --time-budget, or lower "
        "--preemptions)"
    )
