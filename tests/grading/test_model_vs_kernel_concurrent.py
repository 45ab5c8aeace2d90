"""Differential testing on concurrent runs: the model and the real kernel grade the same outcomes.

For each workload (fixed-address operations only), every outcome the kernel shows under real
thread races must be one the model can produce: the set of outcomes the model can reach is
computed exactly, by running the round's ops on the spec in every interleaving that keeps each
task's order (the correct core is atomic, so its outcomes are those of sequential orders). The
model target's own rounds (controlled scheduler) must stay inside the same set, and where a
workload's outcome does not depend on the interleaving, model and kernel show the same key.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import mm
import mm.kernel
import workloads
from stress import grading
from stress.harness import TargetOptions, undo_moved
from stress.history import Operation
from stress.selftest import _workloads as extra
from tests.helpers import needs_linux

pytestmark = needs_linux

TASKS = 4
ROUNDS = 20
# Workloads with fixed-address operations only (hint-vs-fixed has non-fixed hints).
WORKLOADS = [
    "same-page",
    "same-range",
    "partial-overlap",
    "adjacent",
    "chain",
    "churn",
    "zero-page",
    "many-ranges",
    "mprotect-race",
    "split-munmap",
    "low-overlap",
    "boundary",
    "top",
    "mixed",
]
ORDER_FREE = {"same-page", "same-range", "adjacent", "many-ranges", "low-overlap", "boundary"}
"""Workloads whose outcome key is the same in every interleaving."""

BAD = (workloads.FORBIDDEN, grading.UNSPECIFIED, grading.UNKNOWN)
Graded = tuple[workloads.RoundPlan, grading.RoundGrade]


def interleavings(lengths: Sequence[int]) -> Iterator[tuple[int, ...]]:
    """Every sequence of task indices in which task i appears lengths[i] times."""
    pool = [t for t, n in enumerate(lengths) for _ in range(n)]
    yield from sorted(set(itertools.permutations(pool)))


def shape(plan: workloads.RoundPlan) -> tuple[object, ...]:
    """What the reachable outcome keys depend on: the ops relative to the round's base (arena
    ops; page 0 and min_addr ops are absolute), tasks sorted, since keys are counts."""

    def rel(op: mm.Op) -> tuple[int, ...]:
        addr = op.addr - plan.base if op.addr >= plan.base else op.addr
        return (mm.KINDS.index(op.kind), addr, op.length, op.prot, op.flags)

    per_task = [
        (tuple(rel(op) for op in ops), tuple(plan.label(t, i) for i in range(len(ops))))
        for t, ops in enumerate(plan.tasks)
    ]
    return (tuple(rel(op) for op in plan.setup), tuple(sorted(per_task)))


def reachable(
    workload: workloads.Workload, plan: workloads.RoundPlan, params: mm.Params
) -> set[str]:
    """Outcome keys the spec gives this round's ops in some interleaving."""
    state = mm.State.empty()
    for op in plan.setup:
        _, state = mm.apply(state, params, op)
    keys = set()
    for order in interleavings([len(ops) for ops in plan.tasks]):
        s, pos, records = state, [0] * len(plan.tasks), []
        for step, t in enumerate(order):
            op = plan.tasks[t][pos[t]]
            pos[t] += 1
            result, s = mm.apply(s, params, op)
            records.append(Operation(t, op, result, 2 * step, 2 * step + 1))
        graded = grading.grade_round(
            workload,
            grading.RoundResult.from_records(plan, records),
            privileged=params.privileged,
            page_size=params.page_size,
        )
        keys.add(graded.key)
    return keys


async def run_rounds(target: Any, workload: workloads.Workload, seed: int) -> list[Graded]:
    """Drive `target` through ROUNDS rounds of `workload` (setup, race, undo and cleanup)."""
    params = target.params
    space = workloads.Space.from_params(params)
    declare = getattr(target, "declare_regions", None)
    if declare is not None:  # page 0, TASK_SIZE, a boundary's margins: verified free
        declare(workload.regions(TASKS, space))
    await target.open(TASKS, space)
    out = []
    try:
        for r in range(ROUNDS):
            plan = workload.plan(r, TASKS, space, seed)
            if plan.setup:
                await target.run_serial(r, plan.setup)
            race = await target.run_race(r, plan.tasks)
            undo = undo_moved(race.records, params.page_size)
            after = await target.run_serial(r, [*undo, *plan.cleanup, *plan.check])
            result = grading.RoundResult.from_records(
                plan,
                race.records,
                round_index=r,
                problems=race.problems,
                after=after,
                content=race.content,  # the kernel's content oracle
            )
            graded = grading.grade_round(
                workload, result, privileged=params.privileged, page_size=params.page_size
            )
            out.append((plan, graded))
    finally:
        await target.aclose()
    return out


@pytest.mark.parametrize("name", WORKLOADS)
async def test_kernel_and_model_grade_the_same_outcomes(name: str, tmp_path: Path) -> None:
    from stress.harness._kernel import KernelTarget
    from stress.harness._model import ModelTarget

    workload = extra.load(name, tmp_path)[0]
    params = mm.kernel.host_params()
    kernel = await run_rounds(
        KernelTarget(TargetOptions(spec="kernel", params=params)), workload, 11
    )
    model = await run_rounds(
        ModelTarget(TargetOptions(spec="model", scheduler="random", seed=3, params=params)),
        workload,
        11,
    )
    memo: dict[tuple[object, ...], set[str]] = {}
    for side, rounds in (("kernel", kernel), ("model", model)):
        for plan, graded in rounds:
            assert graded.verdict not in BAD, f"{side}: {graded}"
            keys = memo.setdefault(shape(plan), reachable(workload, plan, params))
            assert graded.key in keys, f"{side} outcome {graded.key} is not a model outcome {keys}"
    kernel_keys = {g.key for _, g in kernel}
    model_keys = {g.key for _, g in model}
    if name in ORDER_FREE:
        assert kernel_keys == model_keys and len(kernel_keys) == 1
    else:
        assert kernel_keys & model_keys, (kernel_keys, model_keys)


def test_reachable_outcomes_tell_a_broken_round_apart(tmp_path: Path) -> None:
    """The oracle can fail: two winners of the same page are no model outcome."""
    workload = workloads.get("same-page")
    params = mm.Params.reference()
    plan = workload.plan(0, TASKS, workloads.Space(), 1)
    keys = reachable(workload, plan, params)
    assert keys == {f"winners=1 eexist={TASKS - 1}"}
    chain = workloads.get("chain")
    plan = chain.plan(0, 5, workloads.Space(), 1)
    assert reachable(chain, plan, params) == {"winners=2 eexist=3", "winners=3 eexist=2"}


async def test_a_bug_variant_shows_outcomes_the_model_cannot(tmp_path: Path) -> None:
    """Run through the same comparison, a clobbering core is caught (the test can fail)."""
    from stress.harness._model import ModelTarget

    workload = workloads.get("same-page")
    params = mm.Params.reference()
    options = TargetOptions(spec="model", seed=3, params=params, variant="noreplace-clobbers")
    rounds = await run_rounds(ModelTarget(options), workload, 11)
    escaped = [g.key for plan, g in rounds if g.key not in reachable(workload, plan, params)]
    assert len(escaped) == ROUNDS and all(g.verdict in BAD for _, g in rounds)
