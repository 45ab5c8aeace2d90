"""Grade a run's rounds from its history, in one pass (round after round, as recorded).

The history holds each round as setup, race, cleanup, followed by a round record that says how
many setup and race calls it wrote and what problems the harness saw. The workload's plan is a
pure function of the round, so re-planning gives the role labels the grades need (an exhaustive
run's round record names the workload round each schedule was planned from: "plan").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

import mm
import workloads
from stress.grading._outcomes import Grader, RoundResult
from stress.grading._stats import RaceStats
from stress.history import Operation


@attrs.define(eq=False)
class RoundGrading:
    """Grades rounds one at a time as they are read (`add`): a `Grader` and `RaceStats`,
    which hold aggregates only, so a whole run is graded in memory bounded by one round."""

    workload: workloads.Workload
    tasks: int
    seed: int
    params: mm.Params
    space: workloads.Space
    grader: Grader = attrs.field(init=False)
    stats: RaceStats = attrs.field(init=False)
    graded: int = 0

    def __attrs_post_init__(self) -> None:
        self.grader = Grader(self.workload, self.tasks, self.params)
        self.stats = RaceStats(self.tasks, self.params.page_size)

    def add(self, index: int, ops: Sequence[Operation], record: Mapping[str, Any]) -> None:
        """Round ``index``: its calls in recorded order (setup, race, cleanup) and its record."""
        self.graded += 1
        n_setup, n_race = int(record.get("setup", 0)), int(record.get("race", 0))
        race = ops[n_setup : n_setup + n_race]
        problems = tuple(str(p) for p in record.get("problems") or ())
        if len(race) != n_race:
            problems = (
                *problems,
                f"round {index}: history holds {len(race)} of {n_race} race calls",
            )
        plan = self.workload.plan(int(record.get("plan", index)), self.tasks, self.space, self.seed)
        content = record.get("content")
        result = RoundResult.from_records(
            plan,
            race,
            round_index=index,
            problems=problems,
            after=ops[n_setup + n_race :],
            content=content if isinstance(content, dict) else None,
        )
        self.grader.add(result)
        self.stats.add(result)


def grade_history(
    workload: workloads.Workload,
    tasks: int,
    seed: int,
    params: mm.Params,
    space: workloads.Space,
    ops: Iterable[Operation],
    rounds: Mapping[int, dict[str, Any]],
) -> tuple[Grader, RaceStats]:
    """A `Grader` fed with every recorded round (both readings), and the race statistics.

    `ops` in recorded order; `rounds` maps a round index to its round record (a round without
    one, e.g. the last of a killed run, is not graded: its calls may be incomplete).
    """
    grading = RoundGrading(workload, tasks, seed, params, space)
    current: list[Operation] = []
    index = -1
    graded: set[int] = set()

    def finish() -> None:
        record = rounds.get(index)
        if record is not None:
            graded.add(index)
            grading.add(index, current, record)

    for op in ops:
        if op.round != index:
            if current:
                finish()
            current, index = [], op.round
        current.append(op)
    if current:
        finish()
    for r in sorted(rounds):  # rounds that recorded no call at all (a dead target)
        if r not in graded:
            current, index = [], r
            finish()
    return grading.grader, grading.stats
