"""A brute-force linearizability oracle for mm histories, independent of mmrace's checker.

It uses only the pure `mm` specification (`mm.plan`, `mm.commit`, `mm.step_observed`,
`mm.is_allowed_placement`, `mm.State`, `mm.Params`) and imports nothing from `stress`: it is
the reference the checker is tested against, so it shares none of the checker's reductions
(no observers, no partitions, no time cuts, no race pass). It enumerates every order, memoised
on (set of calls already placed or dropped, state) only.

**Input.** A sequence of `Call(task, op, result, call, ret)`; ``result``/``ret`` None means the
call is pending (no response).

**Order constraints.**

- Real time: a completed call A precedes B when ``A.ret < B.call`` (strictly). Equal stamps
  do *not* order two calls of different tasks: the stamps are readings of a clock taken before
  and after the call, and equal readings do not say which call took effect first. That is the
  engine's convention too (its list puts calls before returns at equal times, so touching
  intervals are concurrent) and Porcupine's.
- Program order: the calls of one task are sequential, whatever the stamps say. They are
  ordered by ``(call, ret, position in the input)`` (a pending ``ret`` sorts last), and a
  task's calls take effect in that order, also when their stamps touch or (in a malformed
  history) overlap.

**Pending calls** are either dropped (never take effect) or take effect at some point after
their call, respecting program order: once a later call of the same task has taken effect, an
earlier pending call of that task can no longer take effect (it is dropped). A pending call
that takes effect does so with an outcome the spec allows in the state where it takes effect:

- fixed mmap, munmap, mprotect: the spec is deterministic (`mm.plan` then `mm.commit`);
- non-fixed mmap whose plan succeeds: *any* allowed placement X (`mm.step_observed(state,
  params, op, X)` not None). There are far too many; the oracle tries the finite set of
  candidates of `Oracle.placements`, and that set is complete on the *domain* below.

**Why the candidate placements are complete (the domain).** Assume (checked by
`Oracle.complete`): no mmap has MAP_GROWSDOWN; ``2 * len(calls) + 2 < max_map_count``; and a
non-fixed mmap can never find the address space full (free space / (2n + 1) exceeds every
non-fixed length). Then every result the spec gives depends on the state only through the
*set of mapped pages*: the mapping count cannot reach the limit (each call adds at most two
mappings), so rules 6 and 16 (mmap), 4 (munmap) and 9 (mprotect) never fire; no guard gaps;
protections and flags are then never looked at (mprotect's result is 0 iff its whole range is
mapped, and it never changes which pages are mapped). Every call other than a pending non-fixed
mmap reads or writes the page set only on *static* ranges whose ends are known from the
history: fixed and munmap/mprotect ranges, the returned range of a completed non-fixed mmap,
and every non-fixed hint range (the hint must be taken when its range is free). Their ends,
with ``page_align(mmap_min_addr)`` and ``TASK_SIZE``, cut ``[mmap_min_addr, TASK_SIZE)`` into
*elementary intervals*; a static read asks "is this union of intervals all free / all mapped?"
and a static write empties or fills whole intervals. Let D be the total length in pages of all
pending non-fixed mmaps. Take any witness order with any placements. A pending mapping either
meets an interval end c (then X lies in ``[c - L, c]``: a candidate) or lies inside one
interval I. If I is *short* (fewer than 3D pages) every position in I is a candidate. If I is
*long*, pending mappings can never fill it (they hold at most D pages), so all that any later
call can observe of I is whether it is empty; and since static writes clear or fill all of I,
what lies in I at any time is "filled" or "the pending pieces placed since the last clear".
Move every pending mapping that lies inside a long I to the first free position at or above
``I.lo + D pages`` (first fit, ending below ``I.hi - D pages``): pieces that meet an end of I
lie within D pages of it, the moved ones in the middle, which holds at most D pages of them
between two clears, so they stay disjoint, every placement stays free, every hint range and
every static query sees the same "empty / full" answers, and every call keeps its result.
So if any witness exists, one with only candidate placements exists: on the domain a False is
exact. Outside it, a False with a pending non-fixed mmap in the history is reported as
unknown (``linearizable is None``); without one, the search is exact everywhere.

On the domain a completed call whose result no state gives is reported at once
(`Oracle.impossible`), before any search.

**Output.** `Result(linearizable, order, reason)`: ``linearizable`` True with ``order`` a
witness (``(index, outcome)`` pairs in linearization order, the outcome being the observed
result, or for a pending call the result it took effect with), False, or None when it cannot
decide (outside the domain as above, or the node budget ran out).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import mm

U64 = (1 << 64) - 1
_FIXED = mm.MAP_FIXED | mm.MAP_FIXED_NOREPLACE
MAX_NODES = 2_000_000
# Beyond this many pages of pending non-fixed mmaps the candidate set is cut down (and a False
# is reported as unknown).
MAX_DEPTH_PAGES = 64


class Call(NamedTuple):
    """One call of a history: ``result`` and ``ret`` None when pending."""

    task: int
    op: mm.Op
    result: int | None
    call: int
    ret: int | None

    @property
    def pending(self) -> bool:
        return self.ret is None


class Result(NamedTuple):
    linearizable: bool | None
    order: tuple[tuple[int, int | None], ...]
    reason: str


def is_nonfixed_mmap(op: mm.Op) -> bool:
    return op.kind == "mmap" and not op.flags & _FIXED


def _length(op: mm.Op, params: mm.Params) -> int:
    """The page-aligned length (0 when it wraps or is 0)."""
    return mm.page_align(op.length & U64, params)


def _hint(op: mm.Op, params: mm.Params) -> int:
    """The hint as the spec rounds it (page down, a non-zero hint below the floor raised)."""
    hint = op.addr & U64 & ~(params.page_size - 1)
    if hint and hint < params.mmap_min_addr:
        hint = mm.page_align(params.mmap_min_addr, params)
    return hint


class Oracle:
    """The search for one history; `decide` runs it."""

    def __init__(
        self,
        params: mm.Params,
        calls: Sequence[Call],
        max_nodes: int = MAX_NODES,
        shortcut: bool = True,
    ):
        self.params = params
        self.shortcut = shortcut
        self.calls = list(calls)
        self.max_nodes = max_nodes
        n = len(self.calls)
        self.completed_mask = sum(1 << i for i, c in enumerate(self.calls) if not c.pending)
        # must_done[i]: completed calls that must have taken effect before i (real time and
        # program order); drops[i]: pending calls of i's task that come before i in program
        # order (they can no longer take effect once i has).
        self.must_done = [0] * n
        self.drops = [0] * n
        for i, b in enumerate(self.calls):
            for j, a in enumerate(self.calls):
                if i == j:
                    continue
                if a.ret is not None and a.ret < b.call:
                    self.must_done[i] |= 1 << j
                if a.task == b.task and self._prog_key(j) < self._prog_key(i):
                    if a.pending:
                        self.drops[i] |= 1 << j
                    else:
                        self.must_done[i] |= 1 << j
        self.pending_nonfixed = [
            i for i, c in enumerate(self.calls) if c.pending and is_nonfixed_mmap(c.op)
        ]
        self.coords = self._coordinates()
        # only the pending non-fixed mmaps that can succeed at all (their arguments allow it)
        # ever place anything
        self.depth_pages = sum(
            _length(self.calls[i].op, params) // params.page_size
            for i in self.pending_nonfixed
            if mm.plan(mm.State.empty(), params, self.calls[i].op).result >= 0
        )
        self.in_domain = self._in_domain()
        self.complete = self.in_domain and self.depth_pages <= MAX_DEPTH_PAGES
        self.guessed = False  # did a pending non-fixed mmap take effect somewhere?
        self.nodes = 0

    def _prog_key(self, i: int) -> tuple[int, int, int]:
        c = self.calls[i]
        return (c.call, (1 << 200) if c.ret is None else c.ret, i)

    # --- the placement candidates (see the module docstring) --------------------------------

    def _coordinates(self) -> list[int]:
        params = self.params
        low = mm.page_align(params.mmap_min_addr, params)
        points = {low, params.task_size}
        for c in self.calls:
            op = c.op
            length = _length(op, params)
            if is_nonfixed_mmap(op):
                hint = _hint(op, params)
                points.update((hint, hint + length))
                if c.result is not None and c.result >= 0:
                    points.update((c.result, c.result + length))
            else:
                addr = op.addr & U64
                points.update((addr, addr + length))
        return sorted(p for p in points if low <= p <= params.task_size)

    def _in_domain(self) -> bool:
        params = self.params
        n = len(self.calls)
        if any(c.op.kind == "mmap" and c.op.flags & mm.MAP_GROWSDOWN for c in self.calls):
            return False
        if 2 * n + 2 >= params.max_map_count:
            return False
        space = params.task_size - mm.page_align(params.mmap_min_addr, params)
        empty = mm.State.empty()
        mapped = sum(  # what the mmaps that can succeed at all may map
            _length(c.op, params)
            for c in self.calls
            if c.op.kind == "mmap" and mm.plan(empty, params, c.op).result >= 0
        )
        widest = max(
            (
                _length(c.op, params)
                for c in self.calls
                if is_nonfixed_mmap(c.op) and mm.plan(empty, params, c.op).result >= 0
            ),
            default=0,
        )
        return (space - mapped) // (2 * n + 1) > widest

    def placements(self, state: mm.State, op: mm.Op) -> Iterator[int]:
        """Candidate addresses for a pending non-fixed mmap in ``state`` (unfiltered)."""
        params = self.params
        page = params.page_size
        length = _length(op, params)
        pages = min(length // page, MAX_DEPTH_PAGES)
        depth = min(self.depth_pages, MAX_DEPTH_PAGES) * page
        seen: set[int] = set()
        for c in self.coords:  # meeting an interval end: X in [c - L, c]
            for j in range(pages + 1):
                x = c - j * page
                if x not in seen:
                    seen.add(x)
                    yield x
        for lo, hi in zip(self.coords, self.coords[1:], strict=False):
            if hi - lo < 3 * depth:  # short: every position
                for x in range(lo, hi - length + 1, page):
                    if x not in seen:
                        seen.add(x)
                        yield x
            else:  # long: first fit in the middle
                x = lo + depth
                for m in state.overlapping(lo + depth, hi - depth):
                    if m.start >= x + length:
                        break
                    x = max(x, m.end)
                if x + length <= hi - depth and x not in seen:
                    seen.add(x)
                    yield x

    def outcomes(self, state: mm.State, i: int) -> list[tuple[int | None, mm.State]]:
        """The (result, state after) pairs with which call i may take effect in ``state``."""
        c = self.calls[i]
        params = self.params
        if not c.pending:
            assert c.result is not None
            after = mm.step_observed(state, params, c.op, c.result)
            return [] if after is None else [(c.result, after)]
        decided = mm.plan(state, params, c.op)
        if not (is_nonfixed_mmap(c.op) and decided.result >= 0):
            return [(decided.result, mm.commit(state, decided.changes))]
        found: dict[mm.State, int] = {}
        for x in self.placements(state, c.op):
            after = mm.step_observed(state, params, c.op, x)
            if after is not None and after not in found:
                found[after] = x
        self.guessed = True
        return [(x, after) for after, x in found.items()]

    # --- the search --------------------------------------------------------------------------

    def impossible(self, i: int) -> bool:
        """On the domain: does completed call i have a result that no state gives?

        There the result of a fixed mmap, munmap or mprotect depends only on whether its range
        is all free or all mapped (one rule each: EEXIST, or the ENOMEM of a hole), so it is
        the result in the empty state or in a state with everything mapped; a non-fixed mmap
        either fails by its arguments alone or returns a page-aligned address of a range
        inside [mmap_min_addr, TASK_SIZE). A sound shortcut, so that one impossible result in
        a history too large to enumerate is still decided."""
        c = self.calls[i]
        params = self.params
        assert c.result is not None
        empty = mm.plan(mm.State.empty(), params, c.op).result
        if is_nonfixed_mmap(c.op):
            if empty < 0 or c.result < 0:
                return c.result != empty
            length = _length(c.op, params)
            return bool(
                c.result % params.page_size
                or c.result < params.mmap_min_addr
                or c.result + length > params.task_size
            )
        full = mm.State.of(
            [mm.Mapping(0, params.task_size, mm.PROT_READ, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS)]
        )
        return c.result not in (empty, mm.plan(full, params, c.op).result)

    def decide(self) -> Result:
        if self.in_domain and self.shortcut:
            for i, c in enumerate(self.calls):
                if not c.pending and self.impossible(i):
                    return Result(False, (), f"call {i}'s result is impossible in every state")
        failed: set[tuple[int, mm.State]] = set()
        order: list[tuple[int, int | None]] = []
        everything = self.completed_mask
        n = len(self.calls)

        def search(closed: int, state: mm.State) -> bool | None:
            if closed & everything == everything:
                return True
            if (closed, state) in failed:
                return False
            self.nodes += 1
            if self.nodes > self.max_nodes:
                return None
            for i in range(n):
                bit = 1 << i
                if closed & bit or self.must_done[i] & ~closed:
                    continue
                for result, after in self.outcomes(state, i):
                    order.append((i, result))
                    got = search(closed | bit | self.drops[i], after)
                    if got is not False:
                        return got
                    order.pop()
            failed.add((closed, state))
            return False

        got = search(0, mm.State.empty())
        if got is None:
            return Result(None, (), f"node budget of {self.max_nodes} ran out")
        if got:
            return Result(True, tuple(order), "witness order found")
        if self.guessed and not self.complete:
            return Result(
                None,
                (),
                "no order with the candidate placements, and the history is outside the "
                "domain where they are complete",
            )
        return Result(False, (), "no order explains every result")


def check(
    params: mm.Params,
    calls: Sequence[Call],
    *,
    max_nodes: int = MAX_NODES,
    shortcut: bool = True,
) -> Result:
    """Is the history linearizable with respect to the `mm` spec? (see the module docstring)
    ``shortcut=False`` skips the impossible-result shortcut (to test it against the search)."""
    return Oracle(params, calls, max_nodes, shortcut).decide()


def replay(
    params: mm.Params, calls: Sequence[Call], order: Sequence[tuple[int, int | None]]
) -> bool:
    """Does ``order`` (a witness from `check`) really explain the history? An independent
    re-check of a witness: the order respects real time and program order, every completed
    call is in it once, and each call's result is legal where it stands."""
    position = {i: k for k, (i, _) in enumerate(order)}
    if len(position) != len(order):
        return False
    if any(not c.pending and i not in position for i, c in enumerate(calls)):
        return False
    for i, a in enumerate(calls):
        for j, b in enumerate(calls):
            if i == j or j not in position:
                continue
            before = a.ret is not None and a.ret < b.call
            if a.task == b.task:
                ka = (a.call, (1 << 200) if a.ret is None else a.ret, i)
                kb = (b.call, (1 << 200) if b.ret is None else b.ret, j)
                if ka < kb and (not a.pending or i in position):
                    before = True
            if before and (i not in position or position[i] > position[j]):
                return False
    state = mm.State.empty()
    for i, result in order:
        if result is None:
            return False
        after = mm.step_observed(state, params, calls[i].op, result)
        if after is None:
            return False
        state = after
    return True
