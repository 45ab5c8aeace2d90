"""The kernel target: real threads racing the real kernel inside a fenced arena."""

from __future__ import annotations

import sys

import pytest

import mm
from stress.agent._worker import overlap
from stress.errors import UsageError
from stress.history import Operation

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux"),
]

if sys.platform.startswith("linux"):
    from mm import kernel as k
    from stress.harness._kernel import KernelTarget, gaps, merge_ranges
    from workloads import Space

P = 4096
B = 0x100000000000
SIZE = 1 << 24  # 16 MiB is plenty for these tests


def arena_pages(base: int = B, size: int = SIZE) -> tuple[object, ...]:
    return k.clip_regions(k.read_maps(), base, base + size)


def by_task(records: list[Operation]) -> list[list[tuple[int | None, int, int | None]]]:
    tasks: dict[int, list[tuple[int | None, int, int | None]]] = {}
    for rec in records:
        tasks.setdefault(rec.task, []).append((rec.result, rec.call, rec.ret))
    return list(tasks.values())


def test_ranges_helpers() -> None:
    assert merge_ranges([(5, 6), (0, 2), (2, 3), (7, 7)]) == [(0, 3), (5, 6)]
    assert gaps(0, 10, [(2, 3), (5, 12)]) == [(0, 2), (3, 5)]
    assert gaps(0, 10, []) == [(0, 10)]


async def test_same_page_race_has_one_winner_and_cleans_up() -> None:
    tasks, rounds = 8, 50
    target = KernelTarget()
    await target.open(tasks, Space(B, SIZE, P))
    grab = [[mm.Op.mmap(B, P, mm.PROT_READ | mm.PROT_WRITE, mm.NR)] for _ in range(tasks)]
    most_in_flight = 0
    try:
        for r in range(rounds):
            setup = await target.run_serial(r, [mm.Op.mmap(B + 2 * P, P, mm.PROT_NONE, mm.NR)])
            assert [c.result for c in setup] == [B + 2 * P]
            outcome = await target.run_race(r, grab)
            assert outcome.problems == []
            results = sorted(c.result for c in outcome.records if c.result is not None)
            # RACE1: exactly one thread gets the page, every other one EEXIST
            assert results == [-mm.EEXIST] * (tasks - 1) + [B]
            assert {c.task for c in outcome.records} == set(range(tasks))
            assert all(c.call <= c.ret for c in outcome.records if c.ret is not None)
            most_in_flight = max(most_in_flight, overlap(by_task(outcome.records)))
            cleanup = await target.run_serial(r, [mm.Op.munmap(B, 3 * P)])
            assert [c.result for c in cleanup] == [0]
        # the gate really made calls overlap at least once in 50 rounds of 8 threads
        assert most_in_flight >= 2
        assert arena_pages() == ()
        await target.run_serial(rounds, [mm.Op.mmap(B + 5 * P, P, mm.PROT_READ, mm.NR)])
        assert len(arena_pages()) == 1
    finally:
        await target.aclose()
    assert arena_pages() == ()  # aclose unmapped what the run left behind


async def test_interference_between_rounds_is_reported_once() -> None:
    target = KernelTarget()
    await target.open(2, Space(B, SIZE, P))
    grab = [[mm.Op.mmap(B, P, mm.PROT_READ, mm.NR)] for _ in range(2)]
    intruder = B + 100 * P
    try:
        first = await target.run_race(0, grab)
        assert first.problems == []
        await target.run_serial(0, [mm.Op.munmap(B, P)])
        assert k.raw_mmap(intruder, P, mm.PROT_READ, mm.NR) == intruder  # not via the target
        second = await target.run_race(1, grab)
        assert len(second.problems) == 1
        assert "interference" in second.problems[0]
        assert f"{intruder:#x}" in second.problems[0]
        await target.run_serial(1, [mm.Op.munmap(B, P)])
        third = await target.run_race(2, grab)
        assert third.problems == []  # the same intruder is not reported again
        await target.run_serial(2, [mm.Op.munmap(B, P)])
    finally:
        k.raw_munmap(intruder, P)
        await target.aclose()
    assert arena_pages() == ()


async def test_own_mappings_are_not_interference() -> None:
    target = KernelTarget()
    await target.open(3, Space(B, SIZE, P))
    try:
        # pre-existing mapping from setup, and a race that leaves its winners' pages mapped
        await target.run_serial(0, [mm.Op.mmap(B + 8 * P, 2 * P, mm.PROT_READ, mm.NR)])
        plans = [[mm.Op.mmap(B + i * P, 2 * P, mm.PROT_READ, mm.NR)] for i in range(3)]
        assert (await target.run_race(0, plans)).problems == []
        assert (await target.run_race(1, plans)).problems == []
        assert target.interference() == []
    finally:
        await target.aclose()
    assert arena_pages() == ()


async def test_ops_outside_the_arena_are_refused() -> None:
    target = KernelTarget()
    await target.open(2, Space(B, SIZE, P))
    try:
        with pytest.raises(UsageError, match=r"outside the arena"):
            await target.run_race(0, [[mm.Op.munmap(B - P, 2 * P)], []])
        busy = next(r for r in k.read_maps() if r.start >= k.FAR_LIMIT)  # e.g. libc
        with pytest.raises(UsageError, match=r"cannot be claimed: .* is not free"):
            await target.run_serial(0, [mm.Op.munmap(busy.start, P)])
        assert busy in k.read_maps()  # never issued
    finally:
        await target.aclose()


async def test_busy_arena_is_a_usage_error() -> None:
    assert k.raw_mmap(B + P, P, mm.PROT_READ, mm.NR) == B + P
    try:
        target = KernelTarget()
        with pytest.raises(UsageError, match=r"not free"):
            await target.open(2, Space(B, SIZE, P))
        await target.aclose()
    finally:
        k.raw_munmap(B + P, P)


async def test_declared_region_page_zero() -> None:
    params = mm.kernel.host_params()
    if params.dac_mmap_min_addr == 0:
        pytest.skip("vm.mmap_min_addr is 0 here")
    target = KernelTarget(regions=[(0, P)])
    await target.open(2, Space(B, SIZE, P))
    try:
        zero = [[mm.Op.mmap(0, P, mm.PROT_READ, mm.NR)] for _ in range(2)]
        outcome = await target.run_race(0, zero)
        results = sorted(c.result for c in outcome.records if c.result is not None)
        if params.privileged:
            assert results == [-mm.EEXIST, 0]
        else:
            assert results == [-mm.EPERM, -mm.EPERM]
        await target.run_serial(0, [mm.Op.munmap(0, P)])
    finally:
        await target.aclose()
    assert arena_pages(0, P) == ()


async def test_undeclared_low_ops_claim_the_low_window() -> None:
    target = KernelTarget()
    await target.open(2, Space(B, SIZE, P))
    try:
        outcome = await target.run_race(0, [[mm.Op.mmap(0x1000, P, mm.PROT_READ, mm.NR)]] * 2)
        assert sorted(c.result for c in outcome.records if c.result is not None) == [
            -mm.EEXIST,
            0x1000,
        ]
        assert "[0x0, 0x20000)" in target.describe["arenas"]
        await target.run_serial(0, [mm.Op.munmap(0x1000, P)])
    finally:
        await target.aclose()
    assert arena_pages(0, 0x20000) == ()


async def test_moved_hint_can_be_undone_outside_the_arena() -> None:
    """A non-fixed mmap whose hint is taken lands elsewhere; the runner's undo munmap of that
    mapping is allowed (it is ours), and afterwards the range is no longer ours."""
    target = KernelTarget()
    await target.open(1, Space(B, SIZE, P))
    try:
        await target.run_serial(0, [mm.Op.mmap(B, P, mm.PROT_READ, mm.NR)])
        hint = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS
        [moved] = await target.run_serial(0, [mm.Op.mmap(B, P, mm.PROT_READ, hint)])
        assert moved.result is not None and moved.result != B
        assert not B <= moved.result < B + SIZE
        assert len(arena_pages(moved.result, P)) == 1
        [undo] = await target.run_serial(0, [mm.Op.munmap(moved.result, P)])
        assert undo.result == 0 and arena_pages(moved.result, P) == ()
        assert target.space is not None
        assert not target.space._stray(mm.Op.munmap(moved.result, P))  # no longer ours
    finally:
        await target.aclose()
