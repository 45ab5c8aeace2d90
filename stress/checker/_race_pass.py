"""A fast first pass over race rounds: two overlapping probes must not both win.

A *win* is a MAP_FIXED_NOREPLACE mmap that returned its requested address. The pass reports a
pair of wins X, Y of one round whose ranges overlap in O = X ∩ Y when **no munmap that may have
unmapped part of O could be linearized between them**. That is a definite violation:

- say X is linearized first (the other case is symmetric). After X, every page of O is mapped.
  Only munmap leaves pages unmapped: a MAP_FIXED mmap maps over them, a non-fixed mmap maps
  elsewhere, NOREPLACE maps or fails, mprotect only changes protections. So for Y to find O free,
  some munmap M intersecting O must take effect between X and Y;
- M can do so only if it may take effect (it returned 0, or got no response) and its interval
  allows a point pM with pX < pM < pY for points inside X's, M's and Y's intervals, i.e.
  ``X.call <= M.ret and M.call <= Y.ret and X.call <= Y.ret`` (equal times count as concurrent,
  as in the search);
- if no munmap fits either order, no linearization exists.

Likewise, a win Y overlapping an earlier successful mmap X of any kind (fixed, non-fixed) is a
definite violation when X returned before Y was invoked and no munmap of the overlap fits
between them.

The pass is a screen, not the judge: it looks only at pairs within one round (as the harness
numbers them), it is O(n log n) plus the overlapping pairs it meets (at most `PAIR_LIMIT`), and
the general search still decides every verdict. What it finds, the search confirms.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

import attrs

import mm
from stress.checker._mm_partition import created, span
from stress.checker._types import Event

PAIR_LIMIT = 200_000
INF = 1 << 126


@attrs.frozen
class Finding:
    """One definite double claim: ``first`` and ``second`` index the events given to the pass."""

    round: int | None
    first: int
    second: int
    overlap: tuple[int, int]
    message: str


def _range(lo: int, hi: int) -> str:
    return f"[{lo:#x}, {hi:#x})"


@attrs.frozen
class _Munmaps:
    """Munmaps that may have taken effect, indexed by call time for window queries."""

    calls: list[int]
    items: list[tuple[int, int, int, int]]  # (call, ret, lo, hi), sorted by call
    longest: int  # the longest completed munmap
    pending: list[tuple[int, int, int, int]]

    def between(self, a: Event, b: Event, lo: int, hi: int) -> bool:
        """May some munmap intersecting [lo, hi) be linearized after ``a`` and before ``b``?"""
        assert a.ret is not None and b.ret is not None
        if a.call > b.ret:
            return False
        for call, _ret, mlo, mhi in self.pending:
            if call <= b.ret and mlo < hi and lo < mhi:
                return True
        start = bisect_left(self.calls, a.call - self.longest)
        stop = bisect_right(self.calls, b.ret)
        for _call, ret, mlo, mhi in self.items[start:stop]:
            if a.call <= ret and mlo < hi and lo < mhi:
                return True
        return False


def _munmaps(events: Sequence[Event], params: mm.Params) -> _Munmaps:
    items = []
    pending = []
    longest = 0
    for e in events:
        op = e.input
        if op.kind != "munmap":
            continue
        lo, hi = span(op, params)
        if e.ret is None:
            pending.append((e.call, INF, lo, hi))
        elif e.output == 0:
            items.append((e.call, e.ret, lo, hi))
            longest = max(longest, e.ret - e.call)
    items.sort()
    return _Munmaps([i[0] for i in items], items, longest, pending)


def race_pass(
    events: Sequence[Event],
    params: mm.Params,
    rounds: Sequence[int] | None = None,
    *,
    limit: int = 1,
) -> list[Finding]:
    """Definite double wins, at most ``limit`` of them; ``rounds[k]`` is event k's round."""
    claims: dict[int, list[tuple[int, int, int]]] = {}  # round -> (lo, hi, index)
    for k, e in enumerate(events):
        if e.input.kind == "mmap" and e.ret is not None and e.output >= 0:
            made = _claim(e, params)
            if made is not None:
                claims.setdefault(0 if rounds is None else rounds[k], []).append((*made, k))
    munmaps: _Munmaps | None = None
    found: list[Finding] = []
    budget = PAIR_LIMIT
    for rnd in sorted(claims):
        ranges = claims[rnd]
        if len(ranges) < 2:
            continue
        ranges.sort()
        active: list[tuple[int, int, int]] = []
        for lo, hi, k in ranges:
            active = [a for a in active if a[1] > lo]
            for _alo, ahi, j in active:
                budget -= 1
                if budget < 0:
                    return found
                if munmaps is None:
                    munmaps = _munmaps(events, params)
                finding = _judge(events, j, k, (lo, min(hi, ahi)), munmaps, rnd, rounds)
                if finding is not None:
                    found.append(finding)
                    if len(found) >= limit:
                        return found
            active.append((lo, hi, k))
    return found


def _judge(
    events: Sequence[Event],
    j: int,
    k: int,
    overlap: tuple[int, int],
    munmaps: _Munmaps,
    rnd: int,
    rounds: Sequence[int] | None,
) -> Finding | None:
    x, y = events[j], events[k]
    assert x.ret is not None and y.ret is not None
    lo, hi = overlap
    # X before Y: only a plain MAP_FIXED Y may map over X's pages; any other successful Y needs
    # them unmapped in between. Likewise Y before X.
    x_first = (_clobbers(y.input) and x.call <= y.ret) or munmaps.between(x, y, lo, hi)
    if x_first:
        return None
    y_first = (_clobbers(x.input) and y.call <= x.ret) or munmaps.between(y, x, lo, hi)
    if y_first:
        return None
    if (x.call, x.ret) > (y.call, y.ret):
        x, y, j, k = y, x, k, j
    where = "" if rounds is None else f"round {rnd}: "
    if _is_win(x) and _is_win(y):
        what = (
            f"two NOREPLACE probes of {_range(lo, hi)} succeeded (tasks {x.task} and {y.task}) "
            f"with no munmap of that range that could come between them"
        )
    else:
        when = "before it was invoked" if (x.ret or 0) < y.call else "concurrently"
        what = (
            f"task {y.task}'s {_call(y)} mapped {_range(lo, hi)} although task {x.task}'s "
            f"{_call(x)} mapped it {when}, with no munmap of that range that could come "
            f"between them"
        )
    return Finding(None if rounds is None else rnd, j, k, overlap, where + what)


def _call(e: Event) -> str:
    return f"{e.input} -> {mm.format_result('mmap', e.output)}"


def _is_win(e: Event) -> bool:
    return mm.is_probe(e.input)


def _clobbers(op: mm.Op) -> bool:
    """A plain MAP_FIXED mmap: it replaces whatever is mapped."""
    return mm.is_fixed(op) and not mm.is_probe(op)


def _claim(e: Event, params: mm.Params) -> tuple[int, int] | None:
    """The range a completed successful mmap mapped (fixed ones only at their own address)."""
    op = e.input
    if op.kind != "mmap" or e.ret is None or e.output < 0:
        return None
    if mm.is_fixed(op) and e.output != op.addr:
        return None  # illegal anyway; what it mapped is unclear
    made = created(op, e.output, params)
    return made if made is not None and made[0] < made[1] else None
