"""The kernel target: N OS threads race the real Linux kernel through `mm.kernel`.

Every call goes through a `mm.kernel.KernelSpace` fenced into arenas: the workload's space
(reserved far from the interpreter, 0x100000000000 by default, and verified free in
/proc/self/maps) plus any region the workload declares outside it (`declare_regions`, e.g. page
0), each verified free before use. A fixed call outside every arena is never issued.

The threads come from a `stress.worker.WorkerPool`, created once and released together each
round by its start gate; ctypes drops the GIL during each system call, so the calls can
overlap in the kernel.

Interference: before every race the target checks that nothing it did not create is mapped in
its arenas. "Created" is the union of the page ranges its own successful mmap calls returned
(from the records). Each gap of that union is probed with one MAP_FIXED_NOREPLACE PROT_NONE
mapping (EEXIST = someone is there; the mapping is removed at once), which costs a few
microseconds where reading /proc/self/maps costs most of a millisecond; on EEXIST the maps file
is read to name the intruder. Findings go to `RaceOutcome.problems` (the run is then UNKNOWN).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import trio

import mm
from mm import kernel as k
from stress.errors import UsageError
from stress.harness._target import Call, RaceOutcome, TargetOptions, really_raced
from stress.worker import Call as WorkerCall
from stress.worker import WorkerError, WorkerPool

if TYPE_CHECKING:
    from workloads import Space

# The probe mapping: shared anonymous never merges with the run's private neighbours.
_PROBE_FLAGS = mm.MAP_SHARED | mm.MAP_ANONYMOUS | mm.MAP_FIXED_NOREPLACE | 0x4000  # NORESERVE
_EEXIST = -mm.EEXIST


def require_linux(place: str) -> None:
    """UsageError (one line) unless this system can run the kernel binding."""
    if not sys.platform.startswith("linux"):
        raise UsageError(f"{place}: needs Linux (this system is {sys.platform})")


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, overlapping or touching [start, end) ranges merged, empty ones dropped."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(r for r in ranges if r[0] < r[1]):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def gaps(lo: int, hi: int, taken: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of [lo, hi) outside the sorted, disjoint `taken` ranges."""
    out = []
    cursor = lo
    for a, b in taken:
        if b <= cursor or a >= hi:
            continue
        if a > cursor:
            out.append((cursor, a))
        cursor = max(cursor, b)
    if cursor < hi:
        out.append((cursor, hi))
    return out


class _FencedSpace(k.KernelSpace):
    """`KernelSpace` that also lets a munmap remove a mapping it placed outside every arena
    (a non-fixed mmap's result), and then forgets that range (it is no longer ours)."""

    def _stray(self, op: mm.Op) -> bool:
        if op.kind != "munmap":
            return False
        lo, hi = op.addr, op.addr + -(-(op.length & k.U64) // self.page) * self.page
        with self._lock:
            return any(a <= lo and hi <= b for a, b in self._ours_outside)

    def check(self, op: mm.Op) -> None:
        if not self._stray(op):
            super().check(op)

    def apply(self, op: mm.Op) -> int:
        if not self._stray(op):
            return super().apply(op)
        result = k.raw_munmap(op.addr, op.length)
        if result == 0:
            end = op.addr + -(-op.length // self.page) * self.page
            with self._lock:
                self._ours_outside[:] = [
                    piece
                    for a, b in self._ours_outside
                    for piece in ((a, min(b, op.addr)), (max(a, end), b))
                    if piece[0] < piece[1]
                ]
        return result


class KernelTarget:
    """The real kernel, raced by `tasks` reusable OS threads (see the module docstring)."""

    name = "kernel"
    clock = "ns"

    def __init__(
        self,
        options: TargetOptions | None = None,
        *,
        gate: str = "barrier",
        regions: Iterable[tuple[int, int]] = (),
    ) -> None:
        require_linux("--target kernel")
        options = options if options is not None else TargetOptions(spec="kernel")
        self.params = options.params if options.params is not None else mm.Params.from_host()
        self.gate = gate
        self.page = k.page_size()
        self._declared = list(regions)
        self.arenas: list[k.Arena] = []
        self.space: k.KernelSpace | None = None
        self._pool: WorkerPool | None = None
        self._created: list[tuple[int, int]] = []  # pages our own mmaps returned, in arenas
        self._reported: set[str] = set()
        self.describe: dict[str, Any] = {"gate": gate}

    def declare_regions(self, regions: Iterable[tuple[int, int]]) -> None:
        """Ranges outside the space the workload may touch (`Workload.regions`); before open."""
        self._declared.extend(regions)

    # --- lifecycle -------------------------------------------------------------------------

    async def open(self, tasks: int, space: Space) -> None:
        page = self.page
        wanted = [(space.base, space.base + space.size)]
        for lo, hi in self._declared:
            wanted.append((lo // page * page, -(-hi // page) * page))
        try:
            for lo, hi in merge_ranges(wanted):
                self.arenas.append(k.Arena.reserve(hi - lo, lo))
        except k.ArenaError as exc:
            self._release_arenas()
            raise UsageError(f"--target kernel: {exc}") from None
        except k.KernelUnavailable as exc:
            self._release_arenas()
            raise UsageError(f"--target kernel: {exc}") from None
        self.space = _FencedSpace(*self.arenas)
        self._pool = WorkerPool(tasks, gate=self.gate, name="mmrace-kernel", inline=True)
        self.describe.update(
            threads=tasks,
            arenas=[f"[{a.base:#x}, {a.end:#x})" for a in self.arenas],
            uname=" ".join(_uname()),
        )

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await trio.to_thread.run_sync(pool.close)
        if self.space is not None:
            self.space.close()
        self._release_arenas()

    def _release_arenas(self) -> None:
        for arena in self.arenas:
            arena.release()

    # --- rounds ----------------------------------------------------------------------------

    async def run_serial(self, round_index: int, ops: Sequence[mm.Op]) -> list[Call]:
        """Setup/cleanup: a few fast system calls, issued from the trio thread itself."""
        space = self._ready(ops)
        clock = time.monotonic_ns
        records = []
        for op in ops:
            call = clock()
            result = space.apply(op)
            records.append(Call(0, op, result, call, clock()))
        self._note_created(records)
        return records

    async def run_race(self, round_index: int, plans: Sequence[Sequence[mm.Op]]) -> RaceOutcome:
        space = self._ready(op for plan in plans for op in plan)
        assert self._pool is not None
        problems = self.interference()
        apply = space.apply
        bound: list[list[WorkerCall]] = [[(apply, (op,)) for op in plan] for plan in plans]
        try:
            # Blocking the trio thread for the round is deliberate: fenced kernel calls take
            # microseconds and cannot hang, and a cross-thread wake-up of trio costs more
            # than the whole round (see docs/targets.md). A checkpoint follows.
            raw = self._pool.run_round(bound)
        except WorkerError as exc:  # e.g. UnsafeCall: never issued; the run cannot go on
            raise UsageError(f"--target kernel: {exc}") from None
        await trio.lowlevel.checkpoint()
        records = [
            Call(task, op, result, call, ret)
            for task, (plan, got) in enumerate(zip(plans, raw, strict=False))
            for op, (result, call, ret) in zip(plan, got, strict=True)
        ]
        self._note_created(records)
        return RaceOutcome(records, problems, really_raced(records))

    def _ready(self, ops: Iterable[mm.Op]) -> k.KernelSpace:
        """The open space, after checking every op stays inside the arenas (else UsageError).

        An op outside them that was not declared gets a region of its own if that is free:
        the whole low window [0, 0x20000) for a low address (the page-0 cases), else the op's
        own page range. A munmap of a mapping this run's non-fixed mmap placed outside every
        arena (the runner's undo of a moved hint) is allowed.
        """
        space = self.space
        if space is None:
            raise RuntimeError("KernelTarget.open() first")
        for op in ops:
            try:
                space.check(op)
            except k.UnsafeCall:
                self._claim(op)
        return space

    def _claim(self, op: mm.Op) -> None:
        assert self.space is not None
        rng = k.guarded_range(op, self.page)
        assert rng is not None
        lo, hi = (0, k.LOW_LIMIT) if rng[1] <= k.LOW_LIMIT else rng
        try:
            arena = k.Arena.reserve(hi - lo, lo)
        except k.ArenaError as exc:
            raise UsageError(
                f"workload: {op} touches [{rng[0]:#x}, {rng[1]:#x}), outside the arena "
                f"({', '.join(str(a) for a in self.arenas)}), and it cannot be claimed: {exc}"
            ) from None
        self.arenas.append(arena)
        self.space.add_arena(arena)
        self.describe["arenas"] = [str(a) for a in self.arenas]

    def _note_created(self, records: Iterable[Call]) -> None:
        added = []
        page = self.page
        for rec in records:
            if rec.op.kind == "mmap" and rec.result is not None and rec.result >= 0:
                end = rec.result + -(-(rec.op.length & k.U64) // page) * page
                added.append((rec.result, end))
        if added:
            self._created = merge_ranges([*self._created, *added])

    # --- interference ----------------------------------------------------------------------

    def interference(self) -> list[str]:
        """Foreign mappings in the arenas (each reported once), as problem sentences."""
        found: list[k.Region] = []
        for arena in self.arenas:
            for lo, hi in gaps(arena.base, arena.end, self._created):
                got = k.raw_mmap(lo, hi - lo, mm.PROT_NONE, _PROBE_FLAGS)
                if got >= 0:
                    k.raw_munmap(got, hi - lo)
                    if got != lo:  # an old kernel's hint semantics: cannot trust the probe
                        found.extend(self._foreign(arena))
                        break
                    continue
                found.extend(self._foreign(arena))  # EEXIST, or the probe was refused: look
                break
        problems = []
        for region in found:
            text = f"interference: {region} is mapped inside the arena but this run never mapped it"
            if text not in self._reported:
                self._reported.add(text)
                problems.append(text)
        return problems

    def _foreign(self, arena: k.Arena) -> list[k.Region]:
        """Pages in `arena` (from /proc/self/maps) outside everything this run created."""
        out = []
        for region in arena.snapshot():
            for lo, hi in gaps(region.start, region.end, self._created):
                out.append(attrs.evolve(region, start=lo, end=hi))
        return out


def _uname() -> tuple[str, ...]:
    import os

    u = os.uname()
    return (u.sysname, u.release, u.machine)


def make_target(options: TargetOptions) -> KernelTarget:
    """Registry factory for ``--target kernel``."""
    return KernelTarget(options)
