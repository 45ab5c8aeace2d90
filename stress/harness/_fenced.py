"""The kernel target's fenced space and its page-range bookkeeping.

`FencedSpace` is `mm.kernel.KernelSpace` (every fixed call confined to reserved arenas) plus
what the target needs: a munmap may remove a mapping this run's non-fixed mmap placed outside
every arena (the runner's undo of a moved hint), and ranges are kept with `insert_range`
(binary search and one splice) so a run that maps a new page every round stays linear.
Ranges are [start, end) pairs, sorted and disjoint.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import mm
from mm import kernel as k


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


def insert_range(ranges: list[tuple[int, int]], starts: list[int], lo: int, hi: int) -> None:
    """Insert [lo, hi) into sorted, disjoint `ranges` (touching ones merge; `starts` is their
    starts, kept in step): a binary search and one list splice, where rebuilding the list
    would cost O(n) Python steps per insert (a long run adds a range every round)."""
    i = bisect.bisect_right(starts, lo)
    if i and ranges[i - 1][1] >= lo:
        i -= 1
        lo = ranges[i][0]
    j = i
    while j < len(ranges) and ranges[j][0] <= hi:
        hi = max(hi, ranges[j][1])
        j += 1
    ranges[i:j] = [(lo, hi)]
    starts[i:j] = [lo]


class FencedSpace(k.KernelSpace):
    """`KernelSpace` that also lets a munmap remove a mapping it placed outside every arena
    (a non-fixed mmap's result), and then forgets that range (it is no longer ours); and
    remembers our mappings inside the arenas with `insert_range` (the base class rebuilds
    its list on every insert)."""

    def __init__(self, *arenas: k.Arena) -> None:
        super().__init__(*arenas)
        self._inside_starts: list[int] = []

    def _remember(self, addr: int, length: int) -> None:
        end = addr + mm.page_length(length, self.page)
        if not any(a.contains(addr, end) for a in self.arenas):
            super()._remember(addr, length)
            return
        with self._lock:
            insert_range(self._ours_inside, self._inside_starts, addr, end)

    def _stray(self, op: mm.Op) -> bool:
        if op.kind != "munmap":
            return False
        lo, hi = mm.page_range(op, self.page)
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
            end = mm.page_range(op, self.page)[1]
            with self._lock:
                self._ours_outside[:] = [
                    piece
                    for a, b in self._ours_outside
                    for piece in ((a, min(b, op.addr)), (max(a, end), b))
                    if piece[0] < piece[1]
                ]
        return result
