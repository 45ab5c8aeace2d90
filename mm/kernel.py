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

import ctypes
import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import attrs

from mm._names import (
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_TYPE,
    PROT_EXEC,
    PROT_NONE,
    PROT_READ,
    PROT_WRITE,
)
from mm._op import Op
from mm._params import CAP_SYS_RAWIO, TASK_SIZE_X86_64
from mm._state import State

FAR_BASE = 0x100000000000
"""The default arena base: far from the heap, the libraries and the stack on x86-64."""
LOW_LIMIT = 0x20000
"""Arenas near address 0 (for the page-0 cases) must end at or below this."""
FAR_LIMIT = 1 << 40
"""Other arenas must start at or above this (1 TiB), well away from brk and the binary."""
U64 = (1 << 64) - 1
_MAP_FAILED = U64


class KernelUnavailable(RuntimeError):
    """The kernel binding was used on a system that is not Linux."""


class UnsafeCall(RuntimeError):
    """A call that could touch memory outside every arena was refused (never issued)."""


class ArenaError(RuntimeError):
    """An arena could not be reserved (not free, overlapping another, badly placed)."""


# --- the raw calls ---------------------------------------------------------------------------

_libc: ctypes.CDLL | None = None
_libc_lock = threading.Lock()


def _lib() -> ctypes.CDLL:
    global _libc
    if not sys.platform.startswith("linux"):
        raise KernelUnavailable(f"the kernel target needs Linux (this system is {sys.platform})")
    with _libc_lock:
        if _libc is None:
            lib = ctypes.CDLL(None, use_errno=True)
            lib.mmap.argtypes = [
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_long,
            ]
            lib.mmap.restype = ctypes.c_void_p
            lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            lib.munmap.restype = ctypes.c_int
            lib.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            lib.mprotect.restype = ctypes.c_int
            _libc = lib
        return _libc


def _int32(value: int) -> int:
    """The C `int` a caller would pass for these bits (two's complement)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _long(value: int) -> int:
    value &= U64
    return value - (1 << 64) if value >= 1 << 63 else value


def raw_mmap(addr: int, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> int:
    """mmap(2) with no safety check: the address, or -errno. Use `KernelSpace` instead."""
    lib = _lib()
    result = lib.mmap(addr & U64, length & U64, _int32(prot), _int32(flags), fd, _long(offset))
    err = ctypes.get_errno()  # this thread's errno, read right after the call
    address = 0 if result is None else int(result)
    return -err if address == _MAP_FAILED else address


def raw_munmap(addr: int, length: int) -> int:
    """munmap(2) with no safety check: 0 or -errno."""
    lib = _lib()
    result = lib.munmap(addr & U64, length & U64)
    err = ctypes.get_errno()
    return -err if result == -1 else int(result)


def raw_mprotect(addr: int, length: int, prot: int) -> int:
    """mprotect(2) with no safety check: 0 or -errno."""
    lib = _lib()
    result = lib.mprotect(addr & U64, length & U64, _int32(prot))
    err = ctypes.get_errno()
    return -err if result == -1 else int(result)


def page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# --- /proc/self/maps -------------------------------------------------------------------------


@attrs.frozen(order=True)
class Region:
    """Pages [start, end) mapped with `prot`; `shared` for MAP_SHARED (an `s` in maps).

    Neighbours with equal protection and sharing are merged, so a `Region` list describes pages,
    not the kernel's VMA boundaries.
    """

    start: int
    end: int
    prot: int
    shared: bool = False

    def __str__(self) -> str:
        letters = "".join(
            c if self.prot & bit else "-"
            for c, bit in (("r", PROT_READ), ("w", PROT_WRITE), ("x", PROT_EXEC))
        )
        return f"[{self.start:#x}, {self.end:#x}) {letters}{'s' if self.shared else 'p'}"


def read_maps(path: str = "/proc/self/maps") -> list[Region]:
    """Every mapping of this process, unmerged, in address order."""
    _lib()
    regions = []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        perms = fields[1]
        prot = (
            (PROT_READ if perms[0] == "r" else 0)
            | (PROT_WRITE if perms[1] == "w" else 0)
            | (PROT_EXEC if perms[2] == "x" else 0)
        )
        regions.append(Region(lo, hi, prot, perms[3] == "s"))
    return regions


def merge_regions(regions: Iterable[Region]) -> tuple[Region, ...]:
    """Sorted, empty ones dropped, touching neighbours with equal prot and sharing merged."""
    merged: list[Region] = []
    for r in sorted(regions):
        if r.start >= r.end:
            continue
        last = merged[-1] if merged else None
        if last and last.end == r.start and (last.prot, last.shared) == (r.prot, r.shared):
            merged[-1] = attrs.evolve(last, end=r.end)
        else:
            merged.append(r)
    return tuple(merged)


def clip_regions(regions: Iterable[Region], lo: int, hi: int) -> tuple[Region, ...]:
    """The parts of `regions` inside [lo, hi), merged."""
    clipped = (
        attrs.evolve(r, start=max(r.start, lo), end=min(r.end, hi))
        for r in regions
        if r.end > lo and r.start < hi
    )
    return merge_regions(clipped)


def model_regions(state: State, lo: int, hi: int) -> tuple[Region, ...]:
    """The model's pages inside [lo, hi), in the same form as `Arena.snapshot`."""
    return clip_regions(
        (Region(m.start, m.end, m.prot, m.flags & MAP_TYPE == MAP_SHARED) for m in state),
        lo,
        hi,
    )


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
        if not op.flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
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
        end = addr + ((length + self.page - 1) & ~(self.page - 1))
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


# --- host probes -----------------------------------------------------------------------------


def probe_mmap_min_addr() -> int | None:
    """The effective mmap_min_addr = max(vm.mmap_min_addr, CONFIG_LSM_MMAP_MIN_ADDR).

    A non-fixed one-page mapping hinted at 0x1000 has its hint raised to
    PAGE_ALIGN(mmap_min_addr) (rule 4) and lands exactly there when that page is free; anywhere
    else (a high address) means the page was taken and we cannot tell: None. Safe: a non-fixed
    mmap never replaces anything, and the page is unmapped at once.
    """
    page = page_size()
    got = raw_mmap(0x1000, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS)
    if got < 0:
        return None
    raw_munmap(got, page)
    return got if got < 1 << 32 else None


# --- capabilities ----------------------------------------------------------------------------

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_cap_sys_rawio() -> None:
    """Drop CAP_SYS_RAWIO from the calling thread (effective, permitted, inheritable), for good.

    Affects this thread only (Linux capabilities are per thread), never any sysctl. Raises
    OSError when capget/capset fail.
    """
    lib = _lib()
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if lib.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    bit = ~(1 << CAP_SYS_RAWIO) & 0xFFFFFFFF
    data[0].effective &= bit
    data[0].permitted &= bit
    data[0].inheritable &= bit
    if lib.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def thread_has_cap_sys_rawio() -> bool:
    """Does the calling thread hold CAP_SYS_RAWIO? (/proc/self/status shows the main thread's.)"""
    try:
        for line in Path("/proc/thread-self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_RAWIO & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False
