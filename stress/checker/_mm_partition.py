"""Splitting an mm history into independent parts: by time (clean cuts) and by space (footprints).

Both splits keep the verdict exact: the history is linearizable iff every part is, each part
being checked from the empty address space. The proofs:

**Time cuts.** Sort the events by call time. A *clean cut* before event i needs (1) quiescence:
every earlier event returned (strictly) before event i was invoked, so no pending event is
earlier; and (2) the earlier events since the previous cut end with *serial munmaps* U1..Uk that
returned 0 (each invoked after every earlier event had returned) whose ranges together cover the
range of every mmap of the segment that returned success (fixed: the requested range;
non-fixed: the returned range). Every linearization puts the segment A before everything after
the cut (real time, by (1)) and U1..Uk last in A, in order. Only mmap creates mapped pages, and
only inside its range, so whatever A left mapped lies in those ranges, which U1..Uk then unmap:
A ends in the empty state, whatever order A took (if a U's 0 was illegal, A's own check fails).
So the history is linearizable iff A is (from the state before it, empty by induction) and the
rest is from the empty state.

**Footprints.** An operation's *footprint* is the set of pages whose contents its result depends
on or that it may change: the requested range for fixed mmaps, munmap and mprotect (a failed
mprotect changes pages only inside it); for a successful non-fixed mmap the returned range plus
the hint's range, extended by the stack guard gap (the hint must be used when that is free).
Events whose footprints do not overlap, transitively, form independent sub-histories (the state
is the disjoint union of their pages; a merged-neighbour boundary changes no result as long as
the mapping count stays below max_map_count), so by locality of linearizability each may be
checked alone. This is unsound when a result depends on the whole address space; such
operations *couple everything* and the segment they are in stays one part:
- an ENOMEM that the arguments alone do not explain (a full address space for a non-fixed mmap,
  or max_map_count), and any non-fixed mmap failure whose result depends on free space;
- a pending non-fixed mmap (it may have mapped anywhere);
- a segment so long that the mapping count could reach max_map_count (each operation adds at
  most two mappings, so ``2 * len(segment) < max_map_count`` rules that out).
Failures whose result the arguments alone decide have an empty footprint: they are grouped in one
part of their own per segment.

**Impossible results.** Some results no state allows at all (`impossible`): a fixed mmap that
succeeded at another address than its own; a result other than the one the arguments alone
decide (the same with nothing and with everything mapped), ENOMEM aside; a non-fixed mmap placed
at an unaligned address or outside [mmap_min_addr, TASK_SIZE). Such an event makes the history
non-linearizable wherever it stands, so it is a part of its own (first, in any segment): the
search fails on it at once instead of trying every order of the calls around it.

A non-fixed mmap's ENOMEM that its arguments do not explain needs an address space with no
free range of its length: a segment of n calls whose mmaps ask for M bytes in all leaves at
least ``(space - M) / (2n + 1)`` bytes free in one range (at most 2n mappings cut the free
space in at most 2n + 1 ranges), less a stack guard gap; when that is more than the call's
length, its ENOMEM is impossible too.

A munmap, or a fixed mmap, that returned ENOMEM which its arguments do
not explain is legal only with the mapping count at max_map_count (munmap splits a mapping;
MAP_FIXED inside one splits it too). A segment starts from the empty space and each of its n
calls adds at most two mappings, so when ``2 * n < max_map_count`` such a call is illegal in
every state the segment can reach: the segment, and so the history, is not linearizable. Such an
event is put in a part of its own: the search on it fails at once, and the explanation says why
(`_mm_explain`), instead of the event coupling the segment into one part too large to search.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import mm
from stress.checker._types import BY_CALL, Event

U64 = 1 << 64
GUARD_GAP_PAGES = 256

Range = tuple[int, int]
SMALL = 256  # segments this small are not split further
COUPLES = None  # footprint value: depends on the whole address space
MAP_COUNT = "map-count"  # footprint value: only a mapping count at max_map_count explains it


def _full(params: mm.Params) -> mm.State:
    flags = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS
    return mm.State.of([mm.Mapping(0, params.task_size, 0, flags)])


def args_decide(op: mm.Op, params: mm.Params) -> int | None:
    """The result when the arguments alone decide it (the same with nothing and with
    everything mapped), else None."""
    empty = mm.plan(mm.State.empty(), params, op).result
    return empty if mm.plan(_full(params), params, op).result == empty else None


def span(op: mm.Op, params: mm.Params) -> Range:
    """The pages a call names (`mm.page_range`): a fixed call's range, a hint's range."""
    return mm.page_range(op, params.page_size)


Bounds = tuple[int, int]  # a call's result with nothing mapped, and with everything mapped


def bounds(op: mm.Op, params: mm.Params) -> Bounds:
    """The spec's results for ``op`` in the empty and in the full address space."""
    return mm.plan(mm.State.empty(), params, op).result, mm.plan(_full(params), params, op).result


def impossible(op: mm.Op, result: int | None, params: mm.Params, ends: Bounds) -> bool:
    """Is this completed result illegal in every state? ``ends`` is `bounds(op, params)`.

    The rules decide every error from the arguments alone except EEXIST (a NOREPLACE overlap:
    the full space gives it) and ENOMEM (no room, a hole, the mapping count), so an error other
    than ENOMEM that neither end gives is impossible; so is a success where both ends give the
    same error, a munmap or mprotect result other than 0, a fixed mmap at another address, and
    a non-fixed one placed unaligned or outside [mmap_min_addr, TASK_SIZE).
    """
    if result is None:
        return False
    empty, full = ends
    if result < 0:
        return result != -mm.ENOMEM and result not in (empty, full)
    if empty < 0 and empty == full:
        return True
    if op.kind != "mmap":
        return result != 0
    if mm.is_fixed(op):
        return result != op.addr % U64
    length = mm.page_length(op.length, params.page_size)
    return (
        result % params.page_size != 0
        or result < params.mmap_min_addr
        or result + length > params.task_size
    )


def footprint(op: mm.Op, result: int | None, params: mm.Params) -> list[Range] | str | None:
    """The ranges an event's result depends on or changes; COUPLES (None) when it depends on
    the whole address space; MAP_COUNT when only a mapping count at the limit explains it."""
    if mm.is_nonfixed(op):
        if result is None:
            return COUPLES
        if result < 0:
            return [] if args_decide(op, params) == result else COUPLES
        made = mm.mapped_range(op, result, params.page_size)
        assert made is not None
        length = mm.page_length(op.length, params.page_size)
        ranges = [made]
        hint = op.addr % U64 & ~(params.page_size - 1)
        if hint and hint < params.mmap_min_addr:
            hint = mm.page_align(params.mmap_min_addr, params)
        if hint:
            gap = GUARD_GAP_PAGES * params.page_size
            ranges.append((hint, min(hint + length + gap, U64)))
        return ranges
    if result == -mm.ENOMEM:
        if op.kind == "munmap":
            return MAP_COUNT
        if op.kind == "mmap" and mm.plan(mm.State.empty(), params, op).result != result:
            return MAP_COUNT
    return [span(op, params)]


def created(op: mm.Op, result: int | None, params: mm.Params) -> Range | None:
    """The range an mmap event may have mapped (None: maps nothing, or unknown for pending): a
    non-fixed mmap's `mm.mapped_range`; a fixed one's own range when it succeeded or got no
    response."""
    if op.kind != "mmap":
        return None
    if mm.is_nonfixed(op):
        return mm.mapped_range(op, result, params.page_size)
    if result is not None and result < 0:
        return None
    return span(op, params)


def _merge(ranges: list[Range]) -> list[Range]:
    """The union of ranges as sorted disjoint ranges (touching ones joined)."""
    merged: list[Range] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def _covered(ranges: list[Range], cover: list[Range]) -> bool:
    """Is every range inside the union of ``cover``?"""
    if not ranges:
        return True
    merged = _merge(cover)
    starts = [m[0] for m in merged]
    for lo, hi in ranges:
        if lo >= hi:
            continue
        k = bisect_right(starts, lo) - 1
        if k < 0 or merged[k][1] < hi:
            return False
    return True


def time_segments(events: Sequence[Event], params: mm.Params) -> list[list[Event]]:
    """Split at clean cuts (see the module docstring); each segment starts from empty and
    holds its events in call order."""
    order = sorted(events, key=BY_CALL)
    segments: list[list[Event]] = []
    first = 0  # where the current segment starts in `order`
    made: list[Range] = []  # ranges mmaps of the current segment may have mapped
    trail: list[Range] = []  # trailing serial munmaps that returned 0
    max_ret = -1
    n = len(order)
    inf = 1 << 126
    # per (call, result; None when pending): (the range a munmap that returned 0 unmaps, the
    # range the call may have mapped), keyed by identity: the events keep the ops alive
    memo: dict[tuple[int, int | None], tuple[Range | None, Range | None]] = {}
    compact_at = 64  # keep `made` merged so that a long segment stays cheap to test
    for k, e in enumerate(order):
        op = e.input
        ret = e.ret
        key = (id(op), None if ret is None else e.output)
        info = memo.get(key)
        if info is None:
            out = key[1]
            if op.kind == "munmap" and out == 0:
                info = memo[key] = (span(op, params), None)
            elif ret is None and mm.is_nonfixed(op):
                info = memo[key] = (None, (0, U64))  # may have mapped anywhere
            else:
                info = memo[key] = (None, created(op, out, params))
        unmapped, rng = info
        if unmapped is not None and e.call > max_ret:
            trail.append(unmapped)
        else:
            if trail:
                trail = []
            if rng is not None:
                made.append(rng)
                if len(made) > compact_at:
                    made = _merge(made)
                    compact_at = 2 * len(made) + 64
        if ret is None:
            max_ret = inf
        elif ret > max_ret:
            max_ret = ret
        if not trail or k + 1 == n:
            continue
        nxt = order[k + 1]
        if max_ret >= nxt.call:
            continue
        if nxt.ret is not None and nxt.input.kind == "munmap" and nxt.output == 0:
            continue  # the next one extends the trail: decide after it
        if _covered(made, trail):
            segments.append(order[first : k + 1])
            first = k + 1
            made, trail = [], []
            compact_at = 64
    if first < n:
        segments.append(order[first:])
    return segments


def components(events: Sequence[Event], params: mm.Params) -> list[list[Event]]:
    """Groups of events with transitively overlapping footprints (for a segment of fewer than
    max_map_count / 2 events; see the module docstring).

    Impossible events (MAP_COUNT) come first, one part each; when an event couples everything,
    the others are one part; else the groups, and the events with an empty footprint last, as
    one group.
    """
    intervals: list[tuple[int, int, int]] = []
    loose: list[int] = []
    impossible: list[list[Event]] = []
    coupled = False
    footprints = []
    for e in events:
        fp = footprint(e.input, e.output if e.ret is not None else None, params)
        if fp == MAP_COUNT:
            impossible.append([e])
        elif fp is COUPLES:
            coupled = True
        footprints.append(fp)
    if coupled:
        return [
            *impossible,
            [e for e, fp in zip(events, footprints, strict=True) if fp != MAP_COUNT],
        ]
    for k, fp in enumerate(footprints):
        if fp == MAP_COUNT:
            continue
        assert isinstance(fp, list)
        spans = [(lo, hi) for lo, hi in fp if lo < hi]
        if not spans:
            loose.append(k)
        for lo, hi in spans:
            intervals.append((lo, hi, k))
    intervals.sort()
    parent = list(range(len(events)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    reach = -1
    rep = -1
    for lo, hi, k in intervals:
        if lo < reach:  # overlaps the run so far (touching ranges do not overlap)
            a, b = find(k), find(rep)
            if a != b:
                parent[a] = b
        else:
            rep = k
        reach = max(reach, hi)
    groups: dict[int, list[Event]] = {}
    loose_set = set(loose)
    for k, e in enumerate(events):
        if k not in loose_set and footprints[k] != MAP_COUNT:
            groups.setdefault(find(k), []).append(e)
    parts = [*impossible, *groups.values()]
    if loose:
        parts.append([events[k] for k in loose])
    return parts


def partition(
    events: Sequence[Event],
    params: mm.Params,
    *,
    split_above: int = SMALL,
    holding: Event | None = None,
    segments: Sequence[list[Event]] | None = None,
) -> list[list[Event]]:
    """Time cuts, then footprint components inside each segment, then time cuts again.

    Segments of at most ``split_above`` events stay whole (a coarser partition is always sound,
    and a small part is cheaper to search than to split). With ``holding``, only the segment
    that holds that event (by identity) is split further: the race pass's confirming search
    needs just its part. ``segments``: the events' time segments when the caller has them
    already (`time_segments` of them, or clean-cut pieces of the events each starting from
    the empty space: a streamed history's), each in call order. Every part is in call order
    (`witness` relies on it).
    """
    parts: list[list[Event]] = []
    ends: dict[int, Bounds] = {}  # by op identity: identical calls share one op

    page = params.page_size
    space = params.task_size - params.mmap_min_addr
    guard = GUARD_GAP_PAGES * page

    def bounds_of(op: mm.Op) -> Bounds:
        got = ends.get(id(op))
        if got is None:
            got = ends[id(op)] = bounds(op, params)
        return got

    def short_of_room(e: Event, room: int) -> bool:
        """A completed call's ENOMEM that nothing in a segment far from the map-count limit
        explains: a non-fixed mmap with room left, or a count-only footprint."""
        op = e.input
        if mm.is_nonfixed(op):  # no room to be short of, unless the arguments say so
            return bounds_of(op)[0] >= 0 and room >= mm.page_length(op.length, page)
        return footprint(op, e.output, params) == MAP_COUNT

    enomem = -mm.ENOMEM
    # per (call, result; None when pending), by op identity: (what it may map, its result is
    # impossible, it is an ENOMEM)
    facts: dict[tuple[int, int | None], tuple[int, bool, bool]] = {}

    def facts_of(op: mm.Op, out: int | None) -> tuple[int, bool, bool]:
        asks = mm.page_length(op.length, page) if op.kind == "mmap" else 0
        if out is None:
            return asks, False, False
        return asks, impossible(op, out, params, bounds_of(op)), out == enomem

    for segment in time_segments(events, params) if segments is None else segments:
        if holding is not None and not any(e is holding for e in segment):
            parts.append(segment)
            continue
        short = 2 * len(segment) < params.max_map_count  # the count cannot reach the limit
        # one pass: what the segment's mmaps ask for, the impossible results, the ENOMEMs
        asked = 0
        lost_ids: set[int] = set()
        refused: list[Event] = []
        for e in segment:
            key = (id(e.input), None if e.ret is None else e.output)
            got = facts.get(key)
            if got is None:
                got = facts[key] = facts_of(e.input, key[1])
            asks, bad, is_enomem = got
            asked += asks
            if bad:
                lost_ids.add(id(e))
            elif is_enomem and short:
                refused.append(e)
        if refused:
            room = (space - asked) // (2 * len(segment) + 1) - guard
            lost_ids.update(id(e) for e in refused if short_of_room(e, room))
        lost = [e for e in segment if id(e) in lost_ids] if lost_ids else []
        if lost:  # parts of their own, first (the engine searches the smallest first)
            parts.extend([e] for e in lost)
            gone = {id(e) for e in lost}
            segment = [e for e in segment if id(e) not in gone]
            if not segment:
                continue
        if len(segment) <= split_above or 2 * len(segment) >= params.max_map_count:
            parts.append(segment)
            continue
        for group in components(segment, params):
            parts.extend(time_segments(group, params) if len(group) > 1 else [group])
    return parts
