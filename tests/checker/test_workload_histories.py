"""The checker and the grades on the rounds of the boundary, top and mixed workloads, against an
independent brute force.

Rounds are raced on the model target (controlled scheduler, so calls really overlap) by the
correct core and by the bug variants aimed at each workload. For every round, the brute force
enumerates the orders of whole calls that respect real time (a call that returned before another
was invoked comes first) and steps the `mm` spec through each, with no memo and no reduction:
the round is linearizable when some order explains every result. The checker must say the same,
round by round. A round the brute force finds linearizable must never be graded FORBIDDEN or
UNSPECIFIED (a false alarm), and both verdicts must occur (the comparison can fail).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import mm
import workloads
from stress import checker, grading
from stress.harness import TargetOptions, undo_moved
from stress.harness._model import ModelTarget
from stress.history import Operation
from stress.verdict import Verdict

ROUNDS = 12
CASES = {
    "boundary": ("stride-skip-overlap", "noreplace-clobbers", "check-then-act"),
    "top": ("enomem-below-min", "overlap-before-checks", "flag-ignored"),
    "mixed": ("two-phase-protect", "lost-unmap", "munmap-nonatomic", "check-then-act"),
}
BAD = (workloads.FORBIDDEN, grading.UNSPECIFIED)


def brute_force(params: mm.Params, calls: Sequence[Operation]) -> bool:
    """Is there an order of the calls, respecting real time, that the spec explains?"""
    n = len(calls)
    never = 1 << 64  # a pending call returns after everything
    rets = [never if c.ret is None else c.ret for c in calls]
    before = [{j for j in range(n) if rets[j] < calls[i].call} for i in range(n)]

    def search(state: mm.State, done: frozenset[int]) -> bool:
        if len(done) == n:
            return True
        for i in range(n):
            if i in done or not before[i] <= done:
                continue
            result = calls[i].result
            assert result is not None
            after = mm.step_observed(state, params, calls[i].op, result)
            if after is not None and search(after, done | {i}):
                return True
        return False

    return search(mm.State.empty(), frozenset())


async def raced_rounds(
    workload: workloads.Workload, variant: str | None, params: mm.Params, tasks: int, seed: int
) -> list[tuple[grading.RoundResult, list[Operation]]]:
    """Each round's graded result and every call it made (setup to footprint check)."""
    options = TargetOptions(spec="model", seed=seed, params=params, variant=variant)
    target = ModelTarget(options)
    space = workloads.Space.from_params(params)
    await target.open(tasks, space)
    out = []
    try:
        for r in range(ROUNDS):
            plan = workload.plan(r, tasks, space, seed)
            setup = await target.run_serial(r, plan.setup)
            race = await target.run_race(r, plan.tasks)
            ops = [*undo_moved(race.records, params.page_size), *plan.cleanup, *plan.check]
            after = await target.run_serial(r, ops)
            result = grading.RoundResult.from_records(
                plan, race.records, round_index=r, after=after
            )
            out.append((result, [*setup, *race.records, *after]))
    finally:
        await target.aclose()
    return out


@pytest.mark.parametrize("name", sorted(CASES))
async def test_checker_and_grades_agree_with_the_brute_force(name: str) -> None:
    workload = workloads.get(name)
    verdicts: set[bool] = set()
    for privileged in (False, True):
        params = mm.Params.reference(privileged=privileged)
        for variant in (None, *CASES[name]):
            for tasks in (3, 4):
                rounds = await raced_rounds(workload, variant, params, tasks, seed=tasks)
                for result, calls in rounds:
                    truth = brute_force(params, calls)
                    events = [checker.Event(c.task, c.op, c.result, c.call, c.ret) for c in calls]
                    found = checker.check_events(params, events, None, timeout=30)
                    where = (name, variant, privileged, tasks, result.round)
                    assert found.verdict is (Verdict.OK if truth else Verdict.VIOLATION), where
                    graded = grading.grade_round(
                        workload, result, privileged=privileged, page_size=params.page_size
                    )
                    if truth:
                        assert graded.verdict not in BAD, (where, graded)
                    if variant is None:
                        assert truth, where
                    verdicts.add(truth)
    assert verdicts == {True, False}, name
