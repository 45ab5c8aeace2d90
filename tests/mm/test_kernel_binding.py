"""The kernel binding's fence and bookkeeping: what it refuses, what it cleans up, what it sees."""

from __future__ import annotations

import threading

import pytest

import mm
from mm import NR, Op
from tests.helpers import TASK, B, P, kernel_space, needs_linux

pytestmark = [needs_linux, pytest.mark.kernel]
PA = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS
BASE = B + (2 << 30)
U64 = (1 << 64) - 1


@pytest.mark.parametrize(
    "op",
    [
        Op.mmap(BASE - P, 2 * P, 3, NR),  # straddles the arena start
        Op.mmap(BASE + 16 * P, P, 3, PA | mm.MAP_FIXED),  # just past the end
        Op.munmap(BASE - P, P),
        Op.munmap(BASE + 15 * P + 1, P),  # unaligned: its rounded range leaves the arena
        Op.mprotect(BASE, 1 << 40, 1),  # would walk over other mappings
        Op.mprotect(0x400000, P, 1),
    ],
    ids=str,
)
def test_refuses_calls_outside_the_arena(op: Op) -> None:
    from mm import kernel

    with kernel_space((BASE, BASE + 16 * P)) as space:
        before = kernel.read_maps()
        with pytest.raises(kernel.UnsafeCall, match="outside every arena"):
            space.apply(op)
        assert kernel.read_maps() == before


@pytest.mark.parametrize(
    ("op", "errno"),
    [
        (Op.mmap(TASK, P, 3, NR), mm.ENOMEM),
        (Op.mmap(B, U64, 3, NR), mm.ENOMEM),
        (Op.mmap(0x400000, 0, 3, NR), mm.EINVAL),
        (Op.munmap(1 << 47, P), mm.EINVAL),
        (Op.munmap(0x400000, 1 << 47), mm.EINVAL),
        (Op.mprotect(0x400000, -P & U64, 1), mm.ENOMEM),
    ],
    ids=str,
)
def test_lets_certain_failures_through(op: Op, errno: int) -> None:
    with kernel_space((BASE, BASE + 16 * P)) as space:
        assert space.apply(op) == -errno


def test_cleans_up_everything_it_created() -> None:
    from mm import kernel

    with kernel_space((BASE, BASE + 16 * P)) as space:
        assert space.mmap(BASE, 2 * P, 3, NR) == BASE
        elsewhere = space.mmap(BASE, P, 3, PA)  # a hint that is taken: placed elsewhere
        assert elsewhere >= 0 and elsewhere != BASE
        assert kernel.clip_regions(kernel.read_maps(), elsewhere, elsewhere + P)
    assert not kernel.clip_regions(kernel.read_maps(), elsewhere, elsewhere + P)
    with pytest.raises(kernel.UnsafeCall, match="closed"):
        space.apply(Op.munmap(BASE, P))


def test_interference_is_reported() -> None:
    from mm import kernel

    with kernel_space((BASE, BASE + 16 * P)) as space:
        assert space.mmap(BASE, P, 3, NR) == BASE
        assert space.interference() == []
        foreign = kernel.raw_mmap(BASE + 4 * P, P, 1, NR)  # behind the space's back
        try:
            assert foreign == BASE + 4 * P
            assert space.interference() == [kernel.Region(BASE + 4 * P, BASE + 5 * P, 1)]
            assert space.munmap(BASE, P) == 0
            assert space.interference() == [kernel.Region(BASE + 4 * P, BASE + 5 * P, 1)]
        finally:
            kernel.raw_munmap(BASE + 4 * P, P)


def test_arena_reservation_checks() -> None:
    from mm import kernel

    busy = next(r for r in kernel.read_maps() if r.start >= kernel.FAR_LIMIT)
    with pytest.raises(kernel.ArenaError, match="not free"):
        kernel.Arena.reserve(P, base=busy.start)
    with pytest.raises(kernel.ArenaError, match="must start at or above"):
        kernel.Arena.reserve(P, base=0x40000000)
    with pytest.raises(kernel.ArenaError, match="page-aligned"):
        kernel.Arena.reserve(P, base=BASE + 1)
    with pytest.raises(kernel.ArenaError, match="beyond user space"):
        kernel.Arena.reserve(2 * P, base=TASK - P)
    with kernel.Arena.reserve(4 * P, base=BASE) as arena:
        with pytest.raises(kernel.ArenaError, match="overlaps"):
            kernel.Arena.reserve(4 * P, base=BASE + 2 * P)
        assert arena.snapshot() == ()
    assert not arena.registered


def test_errno_is_per_thread() -> None:
    """Failing calls in several threads at once each get their own errno."""
    from mm import kernel

    results: dict[str, list[int]] = {"einval": [], "enomem": []}

    def worker(name: str, op: Op) -> None:
        for _ in range(300):
            results[name].append(kernel.raw_mmap(op.addr, op.length, op.prot, op.flags))

    threads = [
        threading.Thread(target=worker, args=("einval", Op.mmap(0, 0, 3, PA))),
        threading.Thread(target=worker, args=("enomem", Op.mmap(TASK, P, 3, NR))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results["einval"]) == {-mm.EINVAL}
    assert set(results["enomem"]) == {-mm.ENOMEM}


def test_mmap_min_addr_probe_matches_the_host_params() -> None:
    from mm import kernel

    probed = kernel.probe_mmap_min_addr()
    if probed is None:
        pytest.skip("the page at mmap_min_addr is in use in this process")
    assert probed == mm.kernel.host_params().mmap_min_addr
    assert probed >= mm.kernel.host_params().dac_mmap_min_addr
