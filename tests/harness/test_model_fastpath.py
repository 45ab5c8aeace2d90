"""The model target's fast mode: the reusable crew, and the overlap test on per-task buffers."""

from __future__ import annotations

import random

import pytest

import mm
import workloads
from stress.harness._model import ModelTarget, _really_raced
from stress.harness._target import TargetOptions, really_raced
from stress.history import Operation

B = 0x100000000000
P = 4096


def _buffers(spans: list[list[tuple[int, int | None]]]) -> list[list[Operation]]:
    op = mm.Op.munmap(B, P)
    return [
        [Operation(t, op, None if ret is None else 0, call, ret) for call, ret in task]
        for t, task in enumerate(spans)
    ]


@pytest.mark.parametrize("seed", range(40))
def test_buffer_overlap_matches_the_definition(seed: int) -> None:
    rng = random.Random(seed)
    spans: list[list[tuple[int, int | None]]] = []
    for _ in range(rng.randint(0, 4)):
        t = rng.randint(0, 5)
        task: list[tuple[int, int | None]] = []
        for _ in range(rng.randint(0, 3)):
            call = t + rng.randint(0, 3)
            t = call + rng.randint(0, 4)
            task.append((call, t))
        if task and rng.random() < 0.2:
            task[-1] = (task[-1][0], None)  # pending: always a task's last call
        spans.append(task)
    buffers = _buffers(spans)
    assert _really_raced(buffers) == really_raced([r for b in buffers for r in b])


def test_buffer_overlap_cases() -> None:
    assert _really_raced(_buffers([[(0, 5)], [(0, 3)]]))  # same instant start (steps clock)
    assert not _really_raced(_buffers([[(0, 5)], [(5, 6)]]))  # touching is not overlapping
    assert not _really_raced(_buffers([[(0, 5)], []]))  # one task ran
    assert _really_raced(_buffers([[(0, None)], [(3, None)]]))


async def test_crew_is_reused_and_rebuilt_for_another_task_count() -> None:
    target = ModelTarget(TargetOptions(seed=3, scheduler="trio"))
    await target.open(8, workloads.Space())
    try:
        for tasks in (8, 8, 3, 3):
            plans = [[mm.Op.mmap(B, P, mm.PROT_READ, mm.NR)] for _ in range(tasks)]
            outcome = await target.run_race(0, plans)
            results = sorted(r.result for r in outcome.records if r.result is not None)
            assert results == [-mm.EEXIST] * (tasks - 1) + [B]
            assert sorted(r.task for r in outcome.records) == list(range(tasks))
            assert outcome.overlapped  # every task invoked before any proceeded
            assert target._crew is not None and target._crew.tasks == tasks
            [undo] = await target.run_serial(0, [mm.Op.munmap(B, P)])
            assert undo.result == 0
    finally:
        await target.aclose()
