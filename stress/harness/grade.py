"""Grade a finished run's rounds from its history (after the race, off the hot loop).

The runner remembers, per round, how many setup and race operations it wrote (the history
holds each round as setup, race, cleanup, in that order); the workload's plan is a pure
function of the round, so re-planning gives the role labels the grades need.
"""

from __future__ import annotations

from collections.abc import Sequence

import mm
import workloads
from stress import grading
from stress.harness.runner import RunStats
from stress.history import Operation


def grade_history(
    workload: workloads.Workload,
    tasks: int,
    seed: int,
    params: mm.Params,
    stats: RunStats,
    ops: Sequence[Operation],
) -> grading.Grader:
    """A `grading.Grader` fed with every recorded round (both readings)."""
    grader = grading.Grader(workload, tasks, params)
    space = stats.space or workloads.Space.from_params(params)
    shapes = stats.shapes
    at = 0
    for r in range(len(shapes) // 2):
        n_setup, n_race = shapes[2 * r], shapes[2 * r + 1]
        start = at
        while at < len(ops) and ops[at].round == r:
            at += 1
        race = ops[start + n_setup : start + n_setup + n_race]
        plan = workload.plan(r, tasks, space, seed)
        problems = stats.round_problems.get(r, ())
        if len(race) != n_race:
            problems = (*problems, f"round {r}: history holds {len(race)} of {n_race} race calls")
        grader.add(grading.RoundResult.from_records(plan, race, round_index=r, problems=problems))
    return grader


def first_forbidden(grader: grading.Grader, mode: str = "strict") -> int | None:
    """The first round graded FORBIDDEN in `mode`, if any."""
    rounds = [row["first_round"] for row in grader.rows(mode) if row["grade"] == "FORBIDDEN"]
    return min(rounds) if rounds else None
