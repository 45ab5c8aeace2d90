"""The model against the running kernel on random operation sequences (Hypothesis, stateful).

Random mmap (MAP_FIXED, MAP_FIXED_NOREPLACE, hints; good and bad flags, protections, lengths,
offsets), munmap and mprotect calls go to the model and to the kernel inside a far arena. Every
result must agree (a non-fixed mmap: the kernel's address must be an allowed placement in the
model's state, and the model then follows it), and after every step the arena's pages with
their protections (from /proc/self/maps) must equal the model's.
"""

from __future__ import annotations

import os
from typing import TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import mm
from mm import Op, State
from mm.kernel import host_params
from tests.helpers import TASK, B, P, needs_linux

pytestmark = [needs_linux, pytest.mark.kernel]

U64 = (1 << 64) - 1
BASE = B + (1 << 30)  # away from the spec cases' arena
PAGES = 48  # requests start in the first PAGES pages ...
ARENA = 320 * P  # ... and end inside the arena (room for the directed guard-gap case)

small_pages = st.integers(1, 16).map(lambda n: n * P)
# Mostly well-formed calls (so that mappings build up and collide), sometimes a bad argument.
lengths = st.one_of(
    small_pages,
    small_pages,
    small_pages,
    small_pages.map(lambda n: n - 1),
    small_pages.map(lambda n: n + 1),
    st.just(0),
)
# Lengths the kernel refuses before looking at any mapping (the arena guard allows them).
HUGE_MMAP = [U64, -P & U64, 1 << 47, 1 << 48, TASK + 1]
HUGE_MUNMAP = [U64, 1 << 47, 1 << 48]
HUGE_MPROTECT = [U64, -P & U64, U64 - 2 * P]
# Addresses outside the arena at which the call is refused whatever the mapping.
FAR_MMAP = [TASK, 1 << 47, -P & U64]
FAR_MUNMAP = [1 << 47, -P & U64]
FAR_MPROTECT = [-P & U64]


T = TypeVar("T")


def mostly(good: st.SearchStrategy[T], bad: st.SearchStrategy[T]) -> st.SearchStrategy[T]:
    """`good` about nine times in ten, else `bad`."""
    return st.integers(0, 9).flatmap(lambda n: bad if n == 9 else good)


def addresses(far: list[int]) -> st.SearchStrategy[int]:
    aligned = st.integers(0, PAGES - 1).map(lambda n: BASE + n * P)
    return mostly(aligned, st.one_of(aligned.map(lambda a: a + 1), st.sampled_from(far)))


def sizes(huge: list[int]) -> st.SearchStrategy[int]:
    return mostly(lengths, st.sampled_from(huge))


PROTS = [0, 1, 2, 3, 4, 5, 7]
BAD_MMAP_PROTS = [0x10 | 1, 0x8 | 3, 0x80000000 | 1]
BAD_MPROTECT_PROTS = [0x10, 0x8 | 1, 0x01000000 | 1, 0x02000000 | 1, 0x03000000 | 1]
placements = st.sampled_from(
    [mm.MAP_FIXED_NOREPLACE] * 4
    + [mm.MAP_FIXED] * 2
    + [mm.MAP_FIXED | mm.MAP_FIXED_NOREPLACE, 0, 0]
)
map_types = mostly(
    st.sampled_from([mm.MAP_PRIVATE] * 3 + [mm.MAP_SHARED]),
    st.sampled_from([0, mm.MAP_SHARED_VALIDATE, 0x08, 0x0F]),
)
# Rare extras: GROWSDOWN, NORESERVE, STACK, LOCKED. (Anonymous MAP_HUGETLB is not modelled:
# its result depends on the host's huge page pool.)
extras = mostly(st.just(0), st.sampled_from([mm.MAP_GROWSDOWN, 0x4000, 0x20000, 0x2000]))
# The backing: anonymous, a memfd file (the model treats any fd >= 0 as an open read-write
# file), or no MAP_ANONYMOUS and fd -1 (EBADF).
backings = mostly(st.sampled_from(["anon"] * 5 + ["file"]), st.just("badfd"))
offsets = mostly(st.just(0), st.sampled_from([1, P, 1 << 63, (1 << 63) - P, -P & U64]))


class KernelVsModel(RuleBasedStateMachine):
    """One model state and one kernel arena, driven in lockstep."""

    def __init__(self) -> None:
        super().__init__()
        from mm import kernel

        self.kernel = kernel
        self.params = host_params(privileged=mm.kernel.has_cap_sys_rawio())
        self.state = State.empty()
        self.arena = kernel.Arena.reserve(ARENA, base=BASE)
        self.space = kernel.KernelSpace(self.arena)
        self.log: list[str] = []
        self.memfd = os.memfd_create("mmrace-differential")
        os.ftruncate(self.memfd, ARENA)

    def teardown(self) -> None:
        self.space.close()
        self.arena.release()
        os.close(self.memfd)

    def run(self, op: Op) -> None:
        before = self.state
        got = self.space.apply(op)
        self.log.append(f"{op} -> {mm.format_result(op.kind, got)}")
        nonfixed = mm.is_nonfixed(op)
        if nonfixed and got >= 0:
            after = mm.step_observed(before, self.params, op, got)
            assert after is not None, (
                f"kernel placed {op} at {got:#x}, which the model does not allow "
                f"(model state {before})\nhistory:\n" + "\n".join(self.log)
            )
            self.state = after
            return
        want, self.state = mm.apply(before, self.params, op)
        assert got == want, (
            f"{op}: kernel {mm.format_result(op.kind, got)}, "
            f"model {mm.format_result(op.kind, want)} (model state {before})\nhistory:\n"
            + "\n".join(self.log)
        )

    @rule(
        addr=addresses(FAR_MMAP),
        length=sizes(HUGE_MMAP),
        prot=mostly(st.sampled_from(PROTS), st.sampled_from(BAD_MMAP_PROTS)),
        placement=placements,
        kind=map_types,
        backing=backings,
        extra=extras,
        offset=offsets,
    )
    def mmap(
        self,
        addr: int,
        length: int,
        prot: int,
        placement: int,
        kind: int,
        backing: str,
        extra: int,
        offset: int,
    ) -> None:
        flags = placement | kind | extra | (mm.MAP_ANONYMOUS if backing == "anon" else 0)
        fd = self.memfd if backing == "file" else -1
        self.run(Op.mmap(addr, length, prot, flags, fd=fd, offset=offset))

    @rule(addr=addresses(FAR_MUNMAP), length=sizes(HUGE_MUNMAP))
    def munmap(self, addr: int, length: int) -> None:
        self.run(Op.munmap(addr, length))

    @rule(
        addr=addresses(FAR_MPROTECT),
        length=sizes(HUGE_MPROTECT),
        prot=mostly(st.sampled_from(PROTS), st.sampled_from(BAD_MPROTECT_PROTS)),
    )
    def mprotect(self, addr: int, length: int, prot: int) -> None:
        self.run(Op.mprotect(addr, length, prot))

    @invariant()
    def same_pages(self) -> None:
        kernel_pages = self.arena.snapshot()
        model_pages = self.kernel.model_regions(self.state, self.arena.base, self.arena.end)
        assert kernel_pages == model_pages, (
            "page maps differ\nkernel: "
            + ", ".join(map(str, kernel_pages))
            + "\nmodel:  "
            + ", ".join(map(str, model_pages))
            + "\nhistory:\n"
            + "\n".join(self.log)
        )


KernelVsModel.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def _arena_is_free() -> None:
    from mm import kernel

    try:
        kernel.Arena.reserve(ARENA, base=BASE).release()
    except kernel.ArenaError as exc:
        pytest.skip(f"the differential arena is not free here: {exc}")


TestKernelVsModel = KernelVsModel.TestCase


# Directed sequences: each once found the model wrong (rules 2b, 13, 13a, 13b in mm/_spec.py),
# or exercises a corner the random walk rarely reaches (stack guard gap, PROT_GROWSDOWN).
PA = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS
NRF = mm.MAP_FIXED_NOREPLACE
GD = mm.MAP_GROWSDOWN
DROP = 0x08
FILE = -100  # replaced by the memfd
DIRECTED: dict[str, list[Op]] = {
    "droppable-growsdown": [Op.mmap(BASE, P, 3, DROP | mm.MAP_ANONYMOUS | NRF | GD)],
    "droppable-locked": [Op.mmap(BASE, P, 3, DROP | mm.MAP_ANONYMOUS | NRF | 0x2000)],
    "droppable-hugetlb": [Op.mmap(BASE, P, 3, DROP | mm.MAP_ANONYMOUS | NRF | 0x40000)],
    "droppable-beside-private": [
        Op.mmap(BASE, P, 3, DROP | mm.MAP_ANONYMOUS | NRF),
        Op.mmap(BASE + P, P, 3, PA | NRF),
    ],
    "file-growsdown": [Op.mmap(BASE, P, 3, mm.MAP_PRIVATE | NRF | GD, fd=FILE)],
    "file-hugetlb": [Op.mmap(BASE, P, 3, mm.MAP_PRIVATE | NRF | 0x40000, fd=FILE)],
    "file-hugetlb-len0": [Op.mmap(BASE, 0, 3, mm.MAP_PRIVATE | NRF | 0x40000, fd=FILE)],
    "file-offset-overflow": [Op.mmap(BASE, P, 3, mm.MAP_PRIVATE | NRF, fd=FILE, offset=1 << 63)],
    "file-offset-edge": [
        Op.mmap(BASE, P, 3, mm.MAP_PRIVATE | NRF, fd=FILE, offset=(1 << 63) - P),
        Op.mmap(BASE, P, 3, mm.MAP_PRIVATE | NRF, fd=FILE, offset=(1 << 63) - 2 * P),
    ],
    "file-exists-before-overflow": [
        Op.mmap(BASE, P, 3, mm.MAP_PRIVATE | NRF, fd=FILE),
        Op.mmap(BASE, P, 3, mm.MAP_PRIVATE | NRF, fd=FILE, offset=1 << 63),
    ],
    "file-validate-noreplace": [Op.mmap(BASE, P, 3, mm.MAP_SHARED_VALIDATE | NRF, fd=FILE)],
    "file-validate-fixed": [Op.mmap(BASE, P, 3, mm.MAP_SHARED_VALIDATE | mm.MAP_FIXED, fd=FILE)],
    "file-validate-growsdown": [Op.mmap(BASE, P, 3, mm.MAP_SHARED_VALIDATE | NRF | GD, fd=FILE)],
    "anon-offset-ignored": [Op.mmap(BASE, P, 3, PA | NRF, offset=1 << 63)],
    "shared-growsdown": [Op.mmap(BASE, P, 3, mm.MAP_SHARED | mm.MAP_ANONYMOUS | NRF | GD)],
    "guard-gap-hint": [
        Op.mmap(BASE + 300 * P, 4 * P, 3, PA | NRF | GD),
        Op.mmap(BASE + 43 * P, P, 3, PA),  # ends exactly 256 pages below: taken
        Op.mmap(BASE + 44 * P, P, 3, PA),  # inside the gap: placed elsewhere
        Op.mmap(BASE + 296 * P, P, 3, PA | NRF),  # NOREPLACE ignores the gap
    ],
    "mprotect-growsdown": [
        Op.mmap(BASE + 4 * P, 4 * P, 3, PA | NRF | GD),
        Op.mprotect(BASE + 2 * P, 3 * P, 1 | 0x01000000),
        Op.mprotect(BASE + 6 * P, P, 1 | 0x02000000),
        Op.mprotect(BASE + 9 * P, P, 1 | 0x01000000),
    ],
    "fixed-into-growsdown": [
        Op.mmap(BASE + 4 * P, 4 * P, 3, PA | NRF | GD),
        Op.mmap(BASE + 5 * P, P, 1, PA | mm.MAP_FIXED),
        Op.mmap(BASE + 3 * P, P, 1, PA | NRF),
    ],
    "exec-only-and-sem": [
        Op.mmap(BASE, 2 * P, 4, PA | NRF),
        Op.mprotect(BASE, P, 4),
        Op.mprotect(BASE + P, P, 8 | 1),
    ],
}


@pytest.mark.parametrize("name", sorted(DIRECTED))
def test_directed(name: str) -> None:
    machine = KernelVsModel()
    try:
        for op in DIRECTED[name]:
            machine.run(attrs.evolve(op, fd=machine.memfd) if op.fd == FILE else op)
            machine.same_pages()
    finally:
        machine.teardown()
