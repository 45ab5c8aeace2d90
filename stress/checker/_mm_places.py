"""Where a pending non-fixed mmap may have mapped: a finite set of placements that is enough.

A non-fixed mmap that got no response may have mapped any free range it was allowed, or
nothing. The search cannot try every address; `Places` gives the finite set it tries besides
the spec's own placement, and says when that set is *complete* (a VIOLATION found with it is
a real one). The argument follows the brute-force oracle of the test suite, which was written
independently of this code (tests/checker/oracle/brute.py).

**The domain.** No mmap has MAP_GROWSDOWN; ``2 n + 2 < max_map_count`` for the n calls; and a
non-fixed mmap never finds the space full: ``(space - M) / (2 n + 1)`` exceeds every non-fixed
length, M being what all mmaps that can succeed may map. There every result depends on the
state only through the *set of mapped pages* (the mapping count never reaches the limit, no
guard gap, mprotect is 0 iff its range is all mapped and never changes which pages are).

**The candidates.** Every call but a pending non-fixed mmap reads or writes that set only on
*static* ranges known from the history: fixed, munmap and mprotect ranges, the returned range
of a completed non-fixed mmap, and every non-fixed hint range (the hint must be taken when
free). Their ends, with ``page_align(mmap_min_addr)`` and ``TASK_SIZE``, cut the space into
elementary intervals. Let D be the pages of all pending non-fixed mmaps. A pending mapping of
length L either meets an interval end c (then it starts in ``[c - L, c]``: candidates) or lies
inside one interval I. If I is shorter than 3D pages every position in it is a candidate. If I
is longer, pending mappings never fill it, so all any call observes of I is whether it is
empty, and static writes clear or fill all of I; move every pending mapping that lies inside
a long I to the first free position at or above ``I.lo + D`` pages (the candidate of I): the
moved pieces stay disjoint and free and every call sees the same answers. So if a witness
exists, one with candidate placements only exists: on the domain the search stays exact.
A superset of the ends keeps this true (a long interval split by more ends offers a first-fit
candidate at least D pages inside the original one), so the places of a history also serve
its sub-histories (minimizing). Outside the domain, or when the set would be too large, there
are no places and a VIOLATION that needs a pending non-fixed mmap stays UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import attrs

import mm
from stress.checker._types import Event

U64 = 1 << 64
MAX_DEPTH_PAGES = 64  # D above this: no places (the set grows with D)
MAX_CANDIDATES = 4096  # per placement query: beyond it, no places


@attrs.frozen
class Places:
    """The interval ends of a history and D (see the module docstring); picklable."""

    ends: tuple[int, ...]
    depth_pages: int

    def candidates(self, state: mm.State, length: int, page: int) -> Iterator[int]:
        """Candidate addresses for a pending non-fixed mmap of ``length`` bytes in ``state``."""
        pages = length // page
        depth = self.depth_pages * page
        seen: set[int] = set()
        for c in self.ends:  # meeting an end: the mapping starts in [c - L, c]
            for j in range(pages + 1):
                x = c - j * page
                if x not in seen:
                    seen.add(x)
                    yield x
        for lo, hi in zip(self.ends, self.ends[1:], strict=False):
            if hi - lo < 3 * depth:  # short: every position
                for x in range(lo, hi - length + 1, page):
                    if x not in seen:
                        seen.add(x)
                        yield x
            else:  # long: the first fit at least D pages inside
                x = lo + depth
                for m in state.overlapping(lo + depth, hi - depth):
                    if m.start >= x + length:
                        break
                    x = max(x, m.end)
                if x + length <= hi - depth and x not in seen:
                    seen.add(x)
                    yield x


def may_map(op: mm.Op, params: mm.Params) -> bool:
    """Whether ``op`` is an mmap that can succeed in some state: one that fails in the empty
    space (a bad length or flags) fails in every state, having the most room and no mappings."""
    return op.kind == "mmap" and mm.plan(mm.State.empty(), params, op).result >= 0


def guessed(events: Sequence[Event], params: mm.Params) -> list[Event]:
    """The pending non-fixed mmaps that may have mapped somewhere: the calls `Places` is for."""
    return [
        e for e in events if e.ret is None and mm.is_nonfixed(e.input) and may_map(e.input, params)
    ]


def places_for(events: Sequence[Event], params: mm.Params) -> Places | None:
    """The places of a history with a pending non-fixed mmap that may have mapped (None: none,
    off the domain, or too many candidates)."""
    page = params.page_size
    pending = [e.input for e in guessed(events, params)]
    if not pending:
        return None
    n = len(events)
    if any(e.input.kind == "mmap" and e.input.flags & mm.MAP_GROWSDOWN for e in events):
        return None
    if 2 * n + 2 >= params.max_map_count:
        return None
    low = mm.page_align(params.mmap_min_addr, params)
    can = [e.input for e in events if may_map(e.input, params)]
    mapped = sum(mm.page_length(op.length, page) for op in can)
    widest = max((mm.page_length(op.length, page) for op in can if mm.is_nonfixed(op)), default=0)
    if (params.task_size - low - mapped) // (2 * n + 1) <= widest:
        return None
    depth = sum(mm.page_length(op.length, page) for op in pending) // page
    if depth > MAX_DEPTH_PAGES:
        return None
    points = {low, params.task_size}
    for e in events:
        op = e.input
        length = mm.page_length(op.length, page)
        if mm.is_nonfixed(op):
            hint = mm.requested_address(op, page)  # the hint as the spec rounds it
            if hint and hint < low:
                hint = low
            points.update((hint, min(hint + length, U64)))
            made = mm.mapped_range(op, None if e.ret is None else e.output, page)
            if made is not None:
                points.update(made)
        else:
            points.update(mm.page_range(op, page))
    ends = tuple(sorted(p for p in points if low <= p <= params.task_size))
    longest = max((mm.page_length(op.length, page) for op in pending), default=0) // page
    if len(ends) * (longest + 1) + 3 * depth * len(ends) > MAX_CANDIDATES:
        return None
    return Places(ends, depth)
