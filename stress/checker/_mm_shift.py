"""Moving time segments to one base address, so that rounds at different addresses share calls.

A long run moves its rounds over the arena (round bases vary), so no two rounds make the same
call: every call's bounds, every impossible-result test and every state of the direct order is
computed afresh. Moved by a whole number of pages to a common base, the segments of such a run
are made of the same few calls again, and the memoized facts and steps are found.

**Why moving keeps the verdict.** A segment starts from the empty space. Take a segment whose
calls are all *movable*: fixed mmaps (MAP_FIXED or MAP_FIXED_NOREPLACE; no MAP_GROWSDOWN),
munmaps and mprotects with a page-aligned address and a non-empty page range [addr, addr +
page_align(len)) inside [max(dac_mmap_min_addr, mmap_min_addr), TASK_SIZE); an mmap that
succeeded returned its own address; a munmap or mprotect returned 0 or an error. Add d (a
multiple of the page size) to every address, and to every successful mmap's result, such that
the moved ranges stay inside the same bounds. Each rule of the spec (docs: the spec page) that
such a call meets compares addresses only with each other (intersection, holes, splits,
neighbours that merge, a shared mapping's origin) or with the bounds above (rules 9 and 11 of
mmap, 1 of munmap, 3 of mprotect), and both sides of each comparison move by d or not at all;
counts (max_map_count) and lengths do not move. So by induction over any order of the calls,
every state of the moved segment is the original state moved by d, and every result is the
original result (moved by d for a successful mmap): a linearization of one is a linearization
of the other. Nothing else in a segment's check depends on where it lies. (The suite checks
the claim against the spec itself: tests/checker/test_mm_shift.py.)

Moved events are used only to prove segments linearizable (`stress.checker._mm_check`); a
segment that is not proved that way is judged again as it was recorded, so every word of a
counterexample speaks of the calls of the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mm
from stress.checker._types import Event

_MOVABLE_FLAGS = mm.MAP_FIXED | mm.MAP_FIXED_NOREPLACE
_UNMOVABLE_FLAGS = mm.MAP_GROWSDOWN
_SHARED_OPS = 1 << 16  # moved calls remembered (cleared when full)

Span = tuple[int, int] | None  # a movable call's page range; None: not movable
_UNSEEN: Any = object()


def movable_span(op: mm.Op, params: mm.Params) -> Span:
    """The page range of a call that may be moved (see the module docstring), else None."""
    if op.kind == "mmap":
        if not op.flags & _MOVABLE_FLAGS or op.flags & _UNMOVABLE_FLAGS:
            return None
    elif op.kind not in ("munmap", "mprotect"):
        return None
    lo, hi = mm.page_range(op, params.page_size)
    floor = max(params.dac_mmap_min_addr, params.mmap_min_addr)
    if op.addr % params.page_size or not floor <= lo < hi <= params.task_size:
        return None
    return lo, hi


class Mover:
    """Moves the movable segments of one check to the base of the first one (`move`); equal
    moved calls are one `mm.Op` (the first segment's own calls aside), so that the checker's
    memos keyed by identity find them."""

    def __init__(self, params: mm.Params) -> None:
        self.params = params
        self.floor = max(params.dac_mmap_min_addr, params.mmap_min_addr)
        self.base: int | None = None
        self._spans: dict[int, Span] = {}  # by op identity (the events keep the ops alive)
        self._ops: dict[tuple[str, int, int, int, int, int, int], mm.Op] = {}  # calls by value

    def move(self, segment: list[Event]) -> list[Event]:
        """``segment`` moved to the common base, or ``segment`` itself when it is not
        movable, or already there."""
        spans = self._spans
        lo = hi = -1
        ops = {id(e.input): e.input for e in segment}  # the segment's calls, each once
        for key, op in ops.items():
            span = spans.get(key, _UNSEEN)
            if span is _UNSEEN:
                span = spans[key] = movable_span(op, self.params)
            if span is None:
                return segment
            if lo < 0 or span[0] < lo:
                lo = span[0]
            if span[1] > hi:
                hi = span[1]
        if lo < 0:
            return segment
        if self.base is None:
            self.base = lo
        d = self.base - lo
        if not d or hi + d > self.params.task_size or lo + d < self.floor:
            return segment  # (already there: its results need no look)
        moved = {key: self._op(op, d) for key, op in ops.items()}
        out = []
        for e in segment:
            op = e.input
            result = e.output
            if e.ret is not None and result >= 0:
                if result != (op.addr if op.kind == "mmap" else 0):
                    return segment  # a success at another address, or an odd result
                result += d if op.kind == "mmap" else 0
            out.append(Event(e.task, moved[id(op)], result, e.call, e.ret))
        return out

    def _op(self, op: mm.Op, d: int) -> mm.Op:
        key = (op.kind, op.addr + d, op.length, op.prot, op.flags, op.fd, op.offset)
        moved = self._ops.get(key)
        if moved is None:
            if len(self._ops) >= _SHARED_OPS:
                self._ops.clear()
            moved = self._ops[key] = mm.Op(*key)
        return moved


def moved_segments(segments: Sequence[list[Event]], params: mm.Params) -> list[list[Event]] | None:
    """Every segment moved to one base where it can be (`Mover`); None when none moved."""
    mover = Mover(params)
    out = [mover.move(segment) for segment in segments]
    if all(a is b for a, b in zip(out, segments, strict=True)):
        return None
    return out
