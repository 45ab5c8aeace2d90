"""The two outcomes every workload forbids: "leftover" (the footprint check after the cleanup found
something still mapped) and "clobbered" (the content oracle saw a setup page change that no race
call explains). A lost unmap is caught in the round it happens, in every workload."""

from __future__ import annotations

from pathlib import Path

import pytest

import mm
import workloads
from stress import grading
from stress.harness import TargetOptions, undo_moved
from stress.harness._model import ModelTarget
from stress.history import Operation
from stress.selftest import _workloads as extra

P = 4096
B = 0x100000000000
RW = mm.PROT_READ | mm.PROT_WRITE
FIXED = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS | mm.MAP_FIXED
NAMES = [*workloads.catalog(), *extra.TEXTS]
LEAVES_SEVERAL = {"partial-overlap", "mprotect-race", "mixed", "mprotect-hole"}


@pytest.mark.parametrize("name", NAMES)
async def test_a_lost_unmap_is_caught_in_the_round_it_happens(name: str, tmp_path: Path) -> None:
    """On the lost-unmap variant, a round whose cleanup leaves a mapping behind is graded
    FORBIDDEN, leftover, in that very round; a round that cleaned up is not."""
    workload = extra.load(name, tmp_path)[0]
    params = mm.Params.reference(privileged=True)
    params = mm.Params(**{**params.to_json(), **extra.PARAMS.get(name, {})})
    target = ModelTarget(TargetOptions(seed=5, params=params, variant="lost-unmap"))
    space = workloads.Space.from_params(params)
    await target.open(4, space)
    assert target.core is not None
    caught = clean = 0
    for r in range(12):
        target.core.state = mm.State.empty()  # each round on its own
        plan = workload.plan(r, 4, space, seed=5)
        await target.run_serial(r, plan.setup)
        race = await target.run_race(r, plan.tasks)
        after = await target.run_serial(r, [*undo_moved(race.records, P), *plan.cleanup])
        left = target.core.state  # what the cleanup did not remove
        after += await target.run_serial(r, plan.check)
        result = grading.RoundResult.from_records(plan, race.records, round_index=r, after=after)
        graded = grading.grade_round(workload, result, privileged=True)
        reachable = [lo for lo, hi in workload.regions(4, space) if lo >= params.dac_mmap_min_addr]
        if len(left) and any(left.intersects(lo, lo + space.size) for lo in reachable):
            assert graded.verdict == workloads.FORBIDDEN, (r, graded)
            assert "leftover=" in graded.key or graded.description.startswith("leftover")
            caught += 1
        elif len(left) == 0:
            assert grading.LEFTOVER not in graded.key, (r, graded)
            clean += 1
    await target.aclose()
    assert caught + clean > 0
    if name in LEAVES_SEVERAL:  # the cleanup munmap covers two mappings or more: it happens
        assert caught > 0, name


def test_leftover_is_graded_forbidden_in_words() -> None:
    workload = workloads.get("same-page")
    plan = workload.plan(0, 2, workloads.Space(), 1)
    base = plan.base
    race = [
        Operation(0, plan.tasks[0][0], base, 0, 1),
        Operation(1, plan.tasks[1][0], -mm.EEXIST, 0, 1),
    ]
    check = [Operation(0, plan.check[0], -mm.EEXIST, 5, 6), Operation(0, plan.check[1], 0, 7, 8)]
    after = [Operation(0, plan.cleanup[0], 0, 3, 4), *check]
    result = grading.RoundResult.from_records(plan, race, after=after)
    assert result.checks == tuple(check)
    graded = grading.grade_round(workload, result, privileged=True)
    assert graded.verdict == workloads.FORBIDDEN
    assert graded.key == "winners=1 eexist=1 leftover=1"
    assert graded.description.startswith(f"leftover: [{base:#x}, {base + P:#x}) was still mapped")
    freed = [Operation(0, plan.cleanup[0], 0, 3, 4), Operation(0, plan.check[0], base, 5, 6)]
    fine = grading.RoundResult.from_records(plan, race, after=freed)
    assert grading.grade_round(workload, fine, privileged=True).verdict == workloads.ACCEPTABLE


def test_clobbered_only_when_no_munmap_or_map_fixed_explains_the_change() -> None:
    workload = workloads.get("churn")
    plan = workload.plan(0, 4, workloads.Space(), 1)
    base = plan.base
    ops = [plan.tasks[t][0] for t in range(4)]
    (whole,) = [op for op in ops if mm.is_probe(op) and op.length == 4 * P]
    (unmap,) = [op for op in ops if op.kind == "munmap"]
    (replace,) = [op for op in ops if mm.is_fixed(op) and not mm.is_probe(op)]
    munmap = Operation(2, unmap, 0, 0, 9)
    fixed = Operation(3, replace, base, 0, 9)
    probe = Operation(0, whole, -mm.EEXIST, 0, 9)
    content = {"checked": 4, "changed": [[base + P, "zeroed"]]}

    def grade(calls: list[Operation], changed: list[list[object]]) -> grading.RoundGrade:
        result = grading.RoundResult(0, 4, tuple(calls), content={"checked": 4, "changed": changed})
        return grading.grade_round(workload, result, privileged=True)

    explained = grading.RoundResult(0, 4, (probe, munmap, fixed), content=content)
    assert grading.clobbered(explained, P) == []
    assert grade([probe, munmap, fixed], [[base + P, "zeroed"]]).verdict != workloads.FORBIDDEN
    only_probe = grade([probe], [[base + P, "replaced"]])
    assert only_probe.verdict == workloads.FORBIDDEN and "clobbered=1" in only_probe.key
    assert only_probe.description.startswith(
        f"clobbered: the setup page at {base + P:#x} lost its sentinel bytes during the race"
    )
    assert f"task 0's probe of [{base:#x}, {base + 4 * P:#x}) EEXIST" in only_probe.description
    far = grade([probe, munmap, fixed], [[base + 8 * P, "unmapped"]])  # outside both ranges
    assert far.verdict == workloads.FORBIDDEN and "was unmapped" in far.description
    assert grade([probe], []).verdict != workloads.FORBIDDEN
    none = grading.RoundResult(0, 4, (probe,))
    assert grading.clobbered(none, P) == []  # a target without an oracle
