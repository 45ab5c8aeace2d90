"""The kernel target's fast paths: the occupancy check (PROCMAP_QUERY ioctl, probe fallback),
the fenced-op cache, and the round's overlap computed from the worker buffers."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Iterator

import pytest

import mm
from stress.errors import UsageError

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux"),
]

if sys.platform.startswith("linux"):
    from mm import kernel as k
    from stress.agent import Record, spans_overlap
    from stress.harness._kernel import (
        PROBE_LIMIT,
        KernelTarget,
        _records,
        merge_ranges,
    )
    from stress.harness._target import really_raced
    from stress.harness._vmaquery import Occupancy
    from workloads import Space

P = 4096
B = 0x100000000000
SIZE = 1 << 24


@pytest.fixture
def arena() -> Iterator[k.Arena]:
    with k.Arena.reserve(SIZE, B) as reserved:
        yield reserved


@pytest.mark.parametrize("method", ["auto", "probe"])
def test_busy_sees_exactly_the_mapped_pages(arena: k.Arena, method: str) -> None:
    occ = Occupancy.open(arena) if method == "auto" else Occupancy()
    page = B + 10 * P
    try:
        assert not occ.busy(B, B + SIZE)
        assert k.raw_mmap(page, 2 * P, mm.PROT_READ, mm.NR) == page
        try:
            assert occ.busy(B, B + SIZE)
            assert occ.busy(page + P, page + 2 * P)
            assert occ.busy(B, page + 1)
            assert not occ.busy(B, page)  # ends where the mapping starts
            assert not occ.busy(page + 2 * P, B + SIZE)
        finally:
            k.raw_munmap(page, 2 * P)
        assert not occ.busy(B, B + SIZE)
        assert k.clip_regions(k.read_maps(), B, B + SIZE) == ()  # the checks left nothing
    finally:
        occ.close()


def test_self_test_picks_the_ioctl_when_the_kernel_has_it(arena: k.Arena) -> None:
    occ = Occupancy.open(arena)
    try:
        release = tuple(int(x) for x in os.uname().release.split(".")[:2] if x.isdigit())
        if release >= (6, 11):
            assert occ.method == "procmap-query"
        assert occ.method in ("procmap-query", "probe")
    finally:
        occ.close()
    assert occ.method == "probe"
    assert not occ.busy(B, B + SIZE)  # closed: falls back to the probe


async def test_interference_found_by_the_probe_fallback_too() -> None:
    target = KernelTarget()
    await target.open(2, Space(B, SIZE, P))
    target._occupancy.close()  # as on a kernel without PROCMAP_QUERY
    assert target._occupancy.method == "probe"
    grab = [[mm.Op.mmap(B, P, mm.PROT_READ, mm.NR)] for _ in range(2)]
    intruder = B + 7 * P
    try:
        assert (await target.run_race(0, grab)).problems == []
        await target.run_serial(0, [mm.Op.munmap(B, P)])
        assert k.raw_mmap(intruder, P, mm.PROT_READ, mm.NR) == intruder
        [problem] = (await target.run_race(1, grab)).problems
        assert f"{intruder:#x}" in problem
    finally:
        k.raw_munmap(intruder, P)
        await target.aclose()
    assert k.clip_regions(k.read_maps(), B, B + SIZE) == ()


async def test_fenced_ops_are_cached_but_refusals_are_not() -> None:
    target = KernelTarget()
    await target.open(2, Space(B, SIZE, P))
    outside = mm.Op.munmap(B - P, 2 * P)
    try:
        for _ in range(2):
            with pytest.raises(UsageError, match="outside the arena"):
                await target.run_serial(0, [outside])
        ok = [mm.Op.mmap(B, P, mm.PROT_READ, mm.NR)]
        assert [c.result for c in await target.run_serial(0, ok)] == [B]
        assert [c.result for c in await target.run_serial(0, ok)] == [-mm.EEXIST]
        assert target.space is not None and target.space._ours_inside == [(B, B + P)]
    finally:
        await target.aclose()
    assert k.clip_regions(k.read_maps(), B, B + SIZE) == ()  # remembered, so unmapped


@pytest.mark.parametrize(
    "raw",
    [
        [[(0, 1, 5)], [(0, 2, 6)]],
        [[(0, 1, 5)], [(0, 5, 6)]],
        [[(0, 1, 2), (0, 3, 9)], [(0, 4, 6)]],
        [[(0, 1, 2)], [(None, 3, None)]],
        [[(None, 1, None)], [(None, 3, None)]],
        [[(0, 1, 5)], []],
        [[(0, 1, 5)], [(0, 2, 3)], [(0, 4, 9)]],
    ],
)
def test_fast_really_raced_matches_the_definition(raw: list[list[Record]]) -> None:
    plans = [[mm.Op.munmap(B, P)] * len(task) for task in raw]
    assert spans_overlap(raw) == really_raced(_records(0, plans, raw))


@pytest.mark.parametrize("seed", range(20))
def test_created_ranges_stay_merged(seed: int) -> None:
    rng = random.Random(seed)
    target = KernelTarget()
    ranges = []
    for _ in range(rng.randint(1, 30)):
        lo = rng.randint(0, 40) * P
        hi = lo + rng.randint(1, 5) * P
        ranges.append((lo, hi))
        target._add_created(lo, hi)
    assert target._created == merge_ranges(ranges)
    assert target._created_starts == [lo for lo, _ in target._created]
    for lo, hi in ranges:
        assert target._covered(lo, hi)
    inside = {p for lo, hi in ranges for p in range(lo, hi, P)}
    for page in range(0, 46 * P, P):
        assert target._covered(page, page + P) == (page in inside)


@pytest.mark.parametrize("method", ["auto", "probe"])
async def test_many_created_ranges_still_find_an_intruder(method: str) -> None:
    """A long run creates a new range every round (random bases): the check must stay cheap
    (a walk of what is mapped, or a maps read past PROBE_LIMIT gaps) and still be right."""
    target = KernelTarget()
    await target.open(1, Space(B, SIZE, P))
    if method == "probe":
        target._occupancy.close()
    intruder = B + 301 * P
    try:
        for i in range(PROBE_LIMIT + 10):  # separate pages: as many created ranges
            page = B + (3 * i + 1) * P
            [rec] = await target.run_serial(0, [mm.Op.mmap(page, P, mm.PROT_READ, mm.NR)])
            assert rec.result == page
            await target.run_serial(0, [mm.Op.munmap(page, P)])
        assert len(target._created) == PROBE_LIMIT + 10
        assert target.interference() == []
        assert k.raw_mmap(intruder, P, mm.PROT_READ, mm.NR) == intruder
        [problem] = target.interference()
        assert f"{intruder:#x}" in problem
    finally:
        k.raw_munmap(intruder, P)
        await target.aclose()
