"""The geometry of a call, computed once: which pages it names and which a success occupies.

Every package asks these questions of an `mm.Op`; they are answered here and nowhere else.
Lengths are rounded up to whole pages as the kernel does. Unsigned arithmetic wraps at 2^64 in
the kernel; a range here never runs past 2^64 (such a call fails with ENOMEM or EINVAL anyway).
"""

from __future__ import annotations

from mm._names import MAP_FIXED, MAP_FIXED_NOREPLACE
from mm._op import Op

U64 = 1 << 64
_ANY_FIXED = MAP_FIXED | MAP_FIXED_NOREPLACE

Range = tuple[int, int]


def is_probe(op: Op) -> bool:
    """A MAP_FIXED_NOREPLACE mmap: the atomic probe."""
    return op.kind == "mmap" and bool(op.flags & MAP_FIXED_NOREPLACE)


def is_fixed(op: Op) -> bool:
    """A fixed-address mmap: MAP_FIXED or MAP_FIXED_NOREPLACE."""
    return op.kind == "mmap" and bool(op.flags & _ANY_FIXED)


def is_nonfixed(op: Op) -> bool:
    """An mmap whose address is only a hint (neither MAP_FIXED nor MAP_FIXED_NOREPLACE)."""
    return op.kind == "mmap" and not op.flags & _ANY_FIXED


def page_length(length: int, page_size: int) -> int:
    """``length`` rounded up to whole pages; a length that wraps past 2^64 counts as 2^64."""
    length %= U64
    rounded = -(-length // page_size) * page_size
    return min(rounded, U64)


def page_range(op: Op, page_size: int) -> Range:
    """The pages an op names: [addr, addr + page-rounded length), clipped at 2^64.

    For fixed mmaps, munmap and mprotect, the pages the call acts on; for a non-fixed mmap, its
    hint's range (where it must map when that range is free).
    """
    addr = op.addr % U64
    return addr, min(addr + page_length(op.length, page_size), U64)


def mapped_range(op: Op, result: int | None, page_size: int) -> Range | None:
    """The pages a successful mmap occupies: its result plus its page-rounded length; None for
    anything that maps nothing (not an mmap, failed, pending).

    The length comes from the call, never from a hint's range, which is clipped at 2^64 when
    the hint lies near the top. A fixed mmap that honoured its flag returns its own address,
    so this is the range it names; one that did not mapped where it says it did.
    """
    if op.kind != "mmap" or result is None or result < 0:
        return None
    return result, min(result + page_length(op.length, page_size), U64)


def requested_address(op: Op, page_size: int) -> int:
    """Where a successful mmap lands when it honours its request: the fixed address, or the
    hint rounded down to its page."""
    addr = op.addr % U64
    return addr if op.flags & _ANY_FIXED else addr - addr % page_size


def overlaps(a: Range, b: Range) -> bool:
    """Do two [lo, hi) ranges share a page? (Touching ranges do not.)"""
    return a[0] < b[1] and b[0] < a[1]
