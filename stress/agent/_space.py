"""The agent child's own fenced address space, standard library only (ctypes, os, bisect).

The child runs inside emulators and sandboxes that may not run trio or attrs, so it cannot use
`mm.kernel` (the `mm` package imports both). This module is the minimum the child needs, kept
to the same rules as `mm.kernel` (a test checks them against it on the host):

- raw mmap/munmap/mprotect through libc (results: an address or 0, else -errno);
- arenas: ranges checked free in /proc/self/maps when reserved, far (>= 1 TiB) or entirely
  below 0x20000 (the page-0 cases); a call that could change memory outside every arena is
  refused (`Refused`), never issued, except a munmap of what this child's own mmaps placed
  outside the arenas (a non-fixed mmap, or a probe a runtime moved);
- what this child created (`note`), for the interference check (`foreign`) and for `close`;
- the host's parameters as the child sees them (`host_params`, the hello's ``params``).
"""

from __future__ import annotations

import bisect
import ctypes
import gzip
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

U64 = (1 << 64) - 1
MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE = 0x02, 0x20, 0x10, 0x100000
PROT_READ, PROT_WRITE = 1, 2
FAR_LIMIT = 1 << 40
LOW_LIMIT = 0x20000
TASK_SIZE_X86_64 = (1 << 47) - 4096
PROBE_FLAGS = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE
PROBE_LIMIT = 32  # more gaps than this: read /proc/self/maps instead of probing each

# A wire op: (kind, addr, length, prot, flags).
WireOp = tuple[str, int, int, int, int]
Bound = tuple[Callable[..., int], tuple[int, ...]]
Range = tuple[int, int]


class Refused(Exception):
    """A request the child will not carry out (an unsafe call, a busy arena): one line."""


# --- libc ------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_vp, _sz, _int = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
_libc.mmap.argtypes = [_vp, _sz, _int, _int, _int, ctypes.c_long]
_libc.mmap.restype = _vp
_libc.munmap.argtypes = [_vp, _sz]
_libc.munmap.restype = _int
_libc.mprotect.argtypes = [_vp, _sz, _int]
_libc.mprotect.restype = _int


def _c_int(bits: int) -> int:
    bits &= 0xFFFFFFFF
    return bits - (1 << 32) if bits >> 31 else bits


def sys_mmap(addr: int, length: int, prot: int, flags: int) -> int:
    got = _libc.mmap(addr & U64, length & U64, _c_int(prot), _c_int(flags), -1, 0)
    err = ctypes.get_errno()
    got = 0 if got is None else int(got)
    return -err if got == U64 else got


def sys_munmap(addr: int, length: int) -> int:
    rc = _libc.munmap(addr & U64, length & U64)
    return -ctypes.get_errno() if rc == -1 else rc


def sys_mprotect(addr: int, length: int, prot: int) -> int:
    rc = _libc.mprotect(addr & U64, length & U64, _c_int(prot))
    return -ctypes.get_errno() if rc == -1 else rc


PAGE = os.sysconf("SC_PAGE_SIZE")


# --- /proc/self/maps -------------------------------------------------------------------------


def read_maps() -> list[tuple[int, int, int, str]]:
    """(start, end, prot, text) per line of /proc/self/maps, in address order."""
    out = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            lo, _, hi = fields[0].partition("-")
            perms = fields[1]
            prot = (perms[0] == "r") * 1 | (perms[1] == "w") * 2 | (perms[2] == "x") * 4
            out.append((int(lo, 16), int(hi, 16), prot, line.strip()))
    return out


def clip(maps: Iterable[tuple[int, int, int, str]], lo: int, hi: int) -> list[Range]:
    """The parts of the mapped ranges that lie in [lo, hi)."""
    return [(max(a, lo), min(b, hi)) for a, b, _p, _t in maps if a < hi and lo < b]


# --- host parameters -------------------------------------------------------------------------


def _read_int(path: str, default: int) -> int:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def _lsm_min_addr(dac: int) -> int:
    """CONFIG_LSM_MMAP_MIN_ADDR: the kernel config, else a probe (a non-fixed page hinted at
    0x1000 lands at the effective floor when that page is free), else 65536."""
    for path in (f"/boot/config-{os.uname().release}", "/proc/config.gz"):
        try:
            with open(path, "rb") as f:
                data = f.read()
            text = (gzip.decompress(data) if path.endswith(".gz") else data).decode()
        except (OSError, ValueError, EOFError):
            continue
        for line in text.splitlines():
            if line.startswith("CONFIG_LSM_MMAP_MIN_ADDR="):
                try:
                    return int(line.split("=", 1)[1], 0)
                except ValueError:
                    break
    got = sys_mmap(0x1000, PAGE, 0, MAP_PRIVATE | MAP_ANONYMOUS)
    if got >= 0:
        sys_munmap(got, PAGE)
        if dac <= got < 1 << 32:
            return got
    return 65536


def _privileged() -> bool:
    """CAP_SYS_RAWIO (17) in the effective set of this process."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> 17 & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def host_params() -> dict[str, Any]:
    """`mm.Params` fields as this child sees its machine (the parent judges by them)."""
    dac = _read_int("/proc/sys/vm/mmap_min_addr", 4096)
    return {
        "page_size": PAGE,
        "task_size": TASK_SIZE_X86_64,
        "dac_mmap_min_addr": dac,
        "lsm_mmap_min_addr": _lsm_min_addr(dac),
        "max_map_count": _read_int("/proc/sys/vm/max_map_count", 65530),
        "mmap_base": 0x7F0000000000,
        "privileged": _privileged(),
    }


def _guard_task_size() -> int:
    """TASK_SIZE the fence may rely on: 2^47 - 4096 on x86-64 without la57, else 2^57."""
    if os.uname().machine == "x86_64":
        try:
            with open("/proc/cpuinfo") as f:
                if " la57" not in f.read():
                    return TASK_SIZE_X86_64
        except OSError:
            pass
    return 1 << 57


GUARD_TASK_SIZE = _guard_task_size()


def page_len(length: int) -> int:
    return -(-(length & U64) // PAGE) * PAGE


def guarded(op: WireOp) -> Range | None:
    """The page range a call may change (must lie in an arena); None when it cannot change
    anything anywhere (a non-fixed mmap, or a call refused before any mapping is looked at).
    The same rules as `mm.kernel.guarded_range`."""
    kind, addr, length, _prot, flags = op
    addr, length, top = addr & U64, length & U64, GUARD_TASK_SIZE
    aligned = -(-length // PAGE) * PAGE & U64
    if kind == "mmap":
        if not flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            return None
        if length == 0 or aligned == 0 or aligned > top or addr > top - aligned:
            return None
    elif kind == "munmap":
        if addr > top or length > top - addr or aligned == 0:
            return None
    elif length == 0 or addr + aligned > U64 or aligned == 0:
        return None
    lo = addr - addr % PAGE
    return lo, lo + aligned + (PAGE if addr != lo else 0)


def _insert(ranges: list[Range], starts: list[int], lo: int, hi: int) -> None:
    """Add [lo, hi) to sorted disjoint `ranges` (and their `starts`), merging touching ones."""
    i = bisect.bisect_left(starts, lo)
    if i and ranges[i - 1][1] >= lo:
        i -= 1
    j = i
    while j < len(ranges) and ranges[j][0] <= hi:
        lo, hi = min(lo, ranges[j][0]), max(hi, ranges[j][1])
        j += 1
    ranges[i:j] = [(lo, hi)]
    starts[i:j] = [lo]


def _gaps(lo: int, hi: int, ranges: Sequence[Range]) -> list[Range]:
    """The parts of [lo, hi) outside the sorted disjoint `ranges`."""
    out, at = [], lo
    for a, b in ranges:
        if b <= at or a >= hi:
            continue
        if a > at:
            out.append((at, a))
        at = max(at, b)
    if at < hi:
        out.append((at, hi))
    return out


class Space:
    """The child's arenas and what it created in and outside them (see the module docstring)."""

    def __init__(self) -> None:
        self.arenas: list[Range] = []
        self.created: list[Range] = []  # merged page ranges our mmaps returned, in arenas
        self._starts: list[int] = []
        self.outside: list[Range] = []  # our mmaps' ranges outside every arena
        self._bound: dict[WireOp, Bound] = {}
        self._reported: set[str] = set()

    def reserve(self, lo: int, hi: int) -> None:
        """Add the arena [lo, hi) if it is allowed and free (else `Refused`)."""
        where = f"arena [{lo:#x}, {hi:#x})"
        if lo < 0 or hi <= lo or lo % PAGE or hi % PAGE:
            raise Refused(f"{where} is not page-aligned and non-empty")
        if hi > TASK_SIZE_X86_64:
            raise Refused(f"{where} reaches beyond user space")
        if not (lo >= FAR_LIMIT or hi <= LOW_LIMIT):
            raise Refused(f"{where} must start at or above {FAR_LIMIT:#x} or end at or below "
                          f"{LOW_LIMIT:#x}")  # fmt: skip
        for a, b in self.arenas:
            if a < hi and lo < b:
                raise Refused(f"{where} overlaps arena [{a:#x}, {b:#x})")
        busy = [line for a, b, _p, line in read_maps() if a < hi and lo < b]
        if busy:
            raise Refused(f"{where} is not free: {busy[0]} is mapped")
        self.arenas.append((lo, hi))

    def describe(self) -> list[str]:
        return [f"[{a:#x}, {b:#x})" for a, b in self.arenas]

    def _inside(self, lo: int, hi: int) -> bool:
        return any(a <= lo and hi <= b for a, b in self.arenas)

    # --- fencing ---------------------------------------------------------------------------

    def bind(self, op: WireOp) -> Bound:
        """The raw call for `op`, checked to stay inside the arenas (remembered per op). An op
        outside them gets an arena of its own when that is free: the low window [0, 0x20000)
        for a low address, else its own page range."""
        found = self._bound.get(op)
        if found is not None:
            return found
        kind, addr, length, prot, flags = op
        if kind == "munmap" and self._stray(addr, length):
            return (self._unmap_stray, (addr, length))  # not remembered: changes when unmapped
        rng = guarded(op)
        if rng is not None and not self._inside(*rng):
            lo, hi = (0, LOW_LIMIT) if rng[1] <= LOW_LIMIT else rng
            try:
                self.reserve(lo, hi)
            except Refused as exc:
                raise Refused(
                    f"workload: {kind}({addr:#x}, {length:#x}) touches [{rng[0]:#x}, {rng[1]:#x}),"
                    f" outside the arenas ({', '.join(self.describe())}), and it cannot be "
                    f"claimed: {exc}"
                ) from None
        if kind == "mmap":
            bound: Bound = (sys_mmap, (addr, length, prot, flags))
        elif kind == "munmap":
            bound = (sys_munmap, (addr, length))
        elif kind == "mprotect":
            bound = (sys_mprotect, (addr, length, prot))
        else:
            raise Refused(f"unknown op kind {kind!r}")
        if len(self._bound) >= 4096:
            self._bound.clear()
        self._bound[op] = bound
        return bound

    def _stray(self, addr: int, length: int) -> bool:
        lo = addr & U64
        hi = lo + page_len(length)
        return any(a <= lo and hi <= b for a, b in self.outside)

    def _unmap_stray(self, addr: int, length: int) -> int:
        result = sys_munmap(addr, length)
        if result == 0:
            lo, hi = addr, addr + page_len(length)
            self.outside = [
                piece
                for a, b in self.outside
                for piece in ((a, min(b, lo)), (max(a, hi), b))
                if piece[0] < piece[1]
            ]
        return result

    # --- bookkeeping -----------------------------------------------------------------------

    def note(self, ops: Sequence[WireOp], results: Sequence[int | None]) -> None:
        """Remember the ranges our successful mmaps occupy (in an arena or outside)."""
        for (kind, _addr, length, _prot, _flags), result in zip(ops, results, strict=False):
            if kind != "mmap" or result is None or result < 0:
                continue
            lo, hi = result, min(result + page_len(length), U64 + 1)
            if self._inside(lo, hi):
                i = bisect.bisect_right(self._starts, lo) - 1
                if i < 0 or self.created[i][1] < hi:
                    _insert(self.created, self._starts, lo, hi)
            else:
                self.outside.append((lo, hi))

    def foreign(self) -> list[str]:
        """Interference: mappings in an arena that this child never created, each reported
        once. Each gap of what we created is probed with one MAP_FIXED_NOREPLACE PROT_NONE
        mapping (removed at once); past PROBE_LIMIT gaps, or when a probe finds something,
        /proc/self/maps names the intruders."""
        suspect = False
        for a, b in self.arenas:
            free = _gaps(a, b, self.created)
            if len(free) > PROBE_LIMIT:
                suspect = True
                break
            for lo, hi in free:
                got = sys_mmap(lo, hi - lo, 0, PROBE_FLAGS)
                if got >= 0:
                    sys_munmap(got, hi - lo)
                if got != lo:
                    suspect = True
                    break
            if suspect:
                break
        if not suspect:
            return []
        problems = []
        maps = read_maps()
        for a, b in self.arenas:
            for lo, hi in clip(maps, a, b):
                for x, y in _gaps(lo, hi, self.created):
                    text = (
                        f"interference: [{x:#x}, {y:#x}) is mapped inside the arena but this "
                        "run never mapped it"
                    )
                    if text not in self._reported:
                        self._reported.add(text)
                        problems.append(text)
        return problems

    def protections(self, pages: Iterable[int]) -> dict[int, int]:
        """The protection of the mapping at each page (absent: nothing mapped there)."""
        maps = read_maps()
        starts = [m[0] for m in maps]
        out = {}
        for addr in pages:
            i = bisect.bisect_right(starts, addr) - 1
            if i >= 0 and maps[i][1] > addr:
                out[addr] = maps[i][2]
        return out

    def close(self) -> None:
        """Unmap everything this child created; forget the arenas."""
        for lo, hi in [*self.created, *self.outside]:
            sys_munmap(lo, hi - lo)
        self.created, self._starts, self.outside, self.arenas = [], [], [], []
        self._bound.clear()
