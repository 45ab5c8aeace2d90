"""Per-round detection for `mmrace mutants`: a recording target wrapper and the detector.

`Recorder` wraps any target and keeps each round's calls; `Detector`, called by the runner after
each round, grades the round (strict reading) and checks its calls on their own with the
linearizability checker, and remembers the first round that shows a violation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mm
import workloads
from stress import grading
from stress.checker import Event, Verdict
from stress.checker.mm_check import check_events
from stress.harness._target import CallRecord, RaceOutcome
from stress.harness.runner import RunStats

BAD = (workloads.FORBIDDEN, grading.UNSPECIFIED)


class Recorder:
    """Wraps a target and keeps each round's calls (setup, race, cleanup) for the checker."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.space: workloads.Space | None = None
        self.calls: dict[int, list[CallRecord]] = {}
        self.races: dict[int, RaceOutcome] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)

    async def open(self, tasks: int, space: workloads.Space) -> None:
        self.space = space
        await self.target.open(tasks, space)

    async def run_serial(self, round_index: int, ops: Sequence[mm.Op]) -> list[CallRecord]:
        calls = await self.target.run_serial(round_index, ops)
        self.calls.setdefault(round_index, []).extend(calls)
        return list(calls)

    async def run_race(self, round_index: int, plans: Sequence[Sequence[mm.Op]]) -> RaceOutcome:
        outcome = await self.target.run_race(round_index, plans)
        self.calls.setdefault(round_index, []).extend(outcome.records)
        self.races[round_index] = outcome
        return outcome

    async def aclose(self) -> None:
        await self.target.aclose()

    def take(self, round_index: int) -> tuple[list[CallRecord], RaceOutcome]:
        return self.calls.pop(round_index, []), self.races.pop(round_index)


class Detector:
    """Called after each round: does the strict grading or the checker find a violation?

    The round is graded again here (the same `stress.grading` functions the runner uses) and
    its calls, setup to cleanup, are checked on their own: every round starts from the arena
    the previous cleanup emptied.
    """

    def __init__(
        self, recorder: Recorder, workload: workloads.Workload, seed: int, check_timeout: float
    ) -> None:
        self.recorder = recorder
        self.workload = workload
        self.seed = seed
        self.check_timeout = check_timeout
        self.unknown_rounds = 0
        self.found: str | None = None
        self.found_round: int | None = None

    def __call__(self, stats: RunStats) -> bool:
        r = stats.rounds - 1
        calls, race = self.recorder.take(r)
        params = self.recorder.params
        assert self.recorder.space is not None
        plan = self.workload.plan(r, stats.tasks, self.recorder.space, self.seed)
        result = grading.RoundResult.from_records(
            plan, race.records, round_index=r, problems=race.problems
        )
        graded = grading.grade_round(
            self.workload, result, privileged=params.privileged, page_size=params.page_size
        )
        if graded.verdict == grading.UNKNOWN:
            self.unknown_rounds += 1
        elif graded.verdict in BAD:
            self.found = f"grading: {graded.description} ({graded.key})"
        elif all(c.ret is not None for c in calls):
            events = [Event(c.task, c.op, c.result, c.call, c.ret) for c in calls]
            checked = check_events(params, events, None, timeout=self.check_timeout)
            if checked.verdict is Verdict.VIOLATION:
                self.found = f"checker: {checked.reason}"
            elif checked.verdict is not Verdict.OK:
                self.unknown_rounds += 1
        if self.found is not None and self.found_round is None:
            self.found_round = r
        return self.found is not None
