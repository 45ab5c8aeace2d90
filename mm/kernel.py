"""The real kernel, called through ctypes, fenced into arenas (Linux only).

Calls run inside the running interpreter, so every call that could change existing memory
(MAP_FIXED / MAP_FIXED_NOREPLACE mmap, munmap, mprotect) is refused unless its page range lies
inside an `Arena` this process reserved after checking /proc/self/maps that it was free. The
only exceptions are calls the kernel rejects before looking at any mapping (zero length, a
length or range that leaves user space), which the public cases need. A `KernelSpace`
remembers everything it created and unmaps it when closed.

Results use the raw system-call convention of `mm`: an address or 0 on success, -errno on
failure. Importing this module works everywhere; using it off Linux raises `KernelUnavailable`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType

import attrs

from mm._geometry import is_nonfixed, page_length
from mm._host import CAP_SYS_RAWIO, has_cap_sys_rawio, host_params, thread_has_cap_sys_rawio
from mm._op import Op
from mm._params import TASK_SIZE_X86_64
from mm._procmaps import Region, clip_regions, merge_regions, model_regions, read_maps
from mm._syscalls import (
    KernelUnavailable,
    _lib,
    drop_cap_sys_rawio,
    page_size,
    probe_mmap_min_addr,
    raw_mmap,
    raw_mprotect,
    raw_munmap,
)

__all__ = [
    "CAP_SYS_RAWIO",
    "FAR_BASE",
    "FAR_LIMIT",
    "LOW_LIMIT",
    "Arena",
    "ArenaError",
    "KernelSpace",
    "KernelUnavailable",
    "Region",
    "UnsafeCall",
    "clip_regions",
    "drop_cap_sys_rawio",
    "guard_task_size",
    "guarded_range",
    "has_cap_sys_rawio",
    "host_params",
    "merge_regions",
    "model_regions",
    "page_size",
    "probe_mmap_min_addr",
    "raw_mmap",
    "raw_mprotect",
    "raw_munmap",
    "read_maps",
    "thread_has_cap_sys_rawio",
]

FAR_BASE = 0x100000000000
"""The default arena base: far from the heap, the libraries and the stack on x86-64."""
LOW_LIMIT = 0x20000
"""Arenas near address 0 (for the page-0 cases) must end at or below this."""
FAR_LIMIT = 1 << 40
"""Other arenas must start at or above this (1 TiB), well away from brk and the binary."""
U64 = (1 << 64) - 1


class UnsafeCall(RuntimeError):
    """A call that could touch memory outside every arena was refused (never issued)."""


class ArenaError(RuntimeError):
    """An arena could not be reserved (not free, overlapping another, badly placed)."""


# --- arenas ----------------------------------------------------------------------------------

_arenas: list[Arena] = []
_arenas_lock = threading.Lock()


@attrs.define(eq=False)
class Arena:
    """A range of this process's address space reserved (by bookkeeping, not by a mapping)
    for the kernel target: checked free in /proc/self/maps when reserved.

    Arenas live far away (base >= 1 TiB) or entirely in the first 0x20000 bytes (the page-0
    cases). Use as a context manager, or call `release()`.
    """

    base: int
    size: int
    registered: bool = True

    @property
    def end(self) -> int:
        return self.base + self.size

    @classmethod
    def reserve(cls, size: int, base: int = FAR_BASE) -> Arena:
        page = page_size()
        if base < 0 or size <= 0 or base % page or size % page:
            raise ArenaError(f"arena [{base:#x}, +{size:#x}) is not page-aligned and non-empty")
        end = base + size
        if end > TASK_SIZE_X86_64:
            raise ArenaError(f"arena [{base:#x}, {end:#x}) reaches beyond user space")
        if not (base >= FAR_LIMIT or end <= LOW_LIMIT):
            raise ArenaError(
                f"arena [{base:#x}, {end:#x}) must start at or above {FAR_LIMIT:#x} "
                f"or end at or below {LOW_LIMIT:#x}"
            )
        with _arenas_lock:
            for other in _arenas:
                if other.base < end and base < other.end:
                    raise ArenaError(f"arena [{base:#x}, {end:#x}) overlaps arena {other}")
            busy = clip_regions(read_maps(), base, end)
            if busy:
                raise ArenaError(f"arena [{base:#x}, {end:#x}) is not free: {busy[0]} is mapped")
            arena = cls(base, size)
            _arenas.append(arena)
        return arena

    def contains(self, start: int, end: int) -> bool:
        return self.registered and self.base <= start and end <= self.end

    def snapshot(self) -> tuple[Region, ...]:
        """The pages mapped inside the arena now, with protections, from /proc/self/maps."""
        return clip_regions(read_maps(), self.base, self.end)

    def release(self) -> None:
        """Forget the reservation (does not unmap: `KernelSpace.close` does)."""
        with _arenas_lock:
            if self in _arenas:
                _arenas.remove(self)
        self.registered = False

    def __enter__(self) -> Arena:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __str__(self) -> str:
        return f"[{self.base:#x}, {self.end:#x})"


# --- the fenced address space ----------------------------------------------------------------


def guard_task_size() -> int:
    """The TASK_SIZE the safety check may rely on: 2^47 - 4096 on x86-64 with 4-level paging;
    on anything else (5-level paging, other architectures) a conservative 2^57, so that fewer
    out-of-arena calls count as certainly rejected."""
    import platform

    if platform.machine() == "x86_64":
        try:
            if " la57" not in Path("/proc/cpuinfo").read_text():
                return TASK_SIZE_X86_64
        except OSError:
            pass
    return 1 << 57


def guarded_range(op: Op, page: int, task_size: int | None = None) -> tuple[int, int] | None:
    """The page range a call may change, which must lie inside an arena; None when the call
    cannot change anything anywhere (non-fixed mmap, or rejected before any mapping is seen)."""
    if task_size is None:
        task_size = _GUARD_TASK_SIZE[0] if _GUARD_TASK_SIZE else _cache_guard()
    addr, length = op.addr & U64, op.length & U64
    aligned = (length + page - 1) & ~(page - 1) & U64
    if op.kind == "mmap":
        if is_nonfixed(op):
            return None
        if length == 0 or aligned == 0 or aligned > task_size or addr > task_size - aligned:
            return None  # mmap rules 3, 5, 7, 9: refused before any mapping is looked at
    elif op.kind == "munmap":
        if addr > task_size or length > task_size - addr or aligned == 0:
            return None  # munmap rules 1 and 2
    elif op.kind == "mprotect":
        if length == 0 or addr + aligned > U64 or aligned == 0:
            return None  # mprotect rules 2 and 3 (zero length, wrapping range)
    else:
        raise ValueError(f"unknown operation kind {op.kind!r}")
    lo = addr & ~(page - 1)
    return lo, lo + aligned + (page if addr != lo else 0)


_GUARD_TASK_SIZE: list[int] = []


def _cache_guard() -> int:
    _GUARD_TASK_SIZE.append(guard_task_size())
    return _GUARD_TASK_SIZE[0]


def _add_range(ranges: list[tuple[int, int]], lo: int, hi: int) -> None:
    """Insert [lo, hi) into a sorted list of disjoint ranges, merging touching ones."""
    kept = []
    for a, b in ranges:
        if b < lo or a > hi:
            kept.append((a, b))
        else:
            lo, hi = min(lo, a), max(hi, b)
    kept.append((lo, hi))
    ranges[:] = sorted(kept)


def _minus(region: Region, ranges: list[tuple[int, int]]) -> list[Region]:
    """The parts of `region` outside all `ranges`."""
    parts = [region]
    for a, b in ranges:
        nxt = []
        for p in parts:
            if p.end <= a or p.start >= b:
                nxt.append(p)
                continue
            if p.start < a:
                nxt.append(attrs.evolve(p, end=a))
            if p.end > b:
                nxt.append(attrs.evolve(p, start=b))
        parts = nxt
    return parts


class KernelSpace:
    """This process's address space, reachable only inside the given arenas.

    Every successful mmap is remembered: inside an arena as "pages we may have mapped" (so
    `interference` can tell a foreign mapping from ours, even when racing calls finish out of
    order), outside (a non-fixed result) as a range to unmap on `close`. Thread-safe.
    """

    def __init__(self, *arenas: Arena) -> None:
        self.page = page_size()
        self.arenas = list(arenas)
        self._lock = threading.Lock()
        self._ours_inside: list[tuple[int, int]] = []
        self._ours_outside: list[tuple[int, int]] = []
        self.closed = False
        _lib()

    def add_arena(self, arena: Arena) -> None:
        self.arenas.append(arena)

    def check(self, op: Op) -> None:
        """Raise `UnsafeCall` unless `op` is confined to an arena (or cannot change anything)."""
        if self.closed:
            raise UnsafeCall("the kernel space is closed")
        rng = guarded_range(op, self.page)
        if rng is None:
            return
        if not any(a.contains(*rng) for a in self.arenas):
            raise UnsafeCall(f"{op} touches [{rng[0]:#x}, {rng[1]:#x}), outside every arena")

    def apply(self, op: Op) -> int:
        """Run `op` on the kernel (after `check`): the raw result."""
        self.check(op)
        if op.kind == "mmap":
            result = raw_mmap(op.addr, op.length, op.prot, op.flags, op.fd, op.offset)
            if result >= 0:
                self._remember(result, op.length)
            return result
        if op.kind == "munmap":
            return raw_munmap(op.addr, op.length)
        return raw_mprotect(op.addr, op.length, op.prot)

    def mmap(
        self, addr: int, length: int, prot: int, flags: int, fd: int = -1, off: int = 0
    ) -> int:
        return self.apply(Op.mmap(addr, length, prot, flags, fd=fd, offset=off))

    def munmap(self, addr: int, length: int) -> int:
        return self.apply(Op.munmap(addr, length))

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        return self.apply(Op.mprotect(addr, length, prot))

    def _remember(self, addr: int, length: int) -> None:
        end = addr + page_length(length, self.page)
        with self._lock:
            if any(a.contains(addr, end) for a in self.arenas):
                _add_range(self._ours_inside, addr, end)
            else:
                _add_range(self._ours_outside, addr, end)

    def snapshot(self) -> tuple[Region, ...]:
        """The pages mapped inside all arenas now."""
        maps = read_maps()
        found: list[Region] = []
        for a in self.arenas:
            found.extend(clip_regions(maps, a.base, a.end))
        return merge_regions(found)

    def interference(self) -> list[Region]:
        """Pages mapped in an arena that this space never mapped: someone else is there."""
        with self._lock:
            ours = list(self._ours_inside)
        return [part for r in self.snapshot() for part in _minus(r, ours)]

    def close(self) -> None:
        """Unmap what we mapped (arena pages still mapped, and non-fixed results elsewhere)."""
        if self.closed:
            return
        with self._lock:
            ours = list(self._ours_inside)
            outside = list(self._ours_outside)
        for r in self.snapshot():
            for a, b in ours:
                lo, hi = max(a, r.start), min(b, r.end)
                if lo < hi:
                    raw_munmap(lo, hi - lo)
        for a, b in outside:
            raw_munmap(a, b - a)
        self.closed = True

    def __enter__(self) -> KernelSpace:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
