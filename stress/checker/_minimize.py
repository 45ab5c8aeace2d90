"""`minimize`: shrink a violating history to a smaller one that still violates.

Every step is sound (its result violating implies the original violates) and is re-checked,
kept only when the check says VIOLATION (an UNKNOWN never counts):

- keep only the smallest failing partition (a history is linearizable only if each part is);
- cut the history at a time t where no answered call is in flight: calls made after t are
  dropped (pending calls in flight at t stay pending). Such a prefix of a linearizable
  history is linearizable (take its linearization up to the first dropped call; in-flight
  calls after that point are left out), so a violating prefix proves a violation. Prefixes
  grow with t, so the earliest violating cut is found by binary search over those times;
- drop observer calls (completed calls that never change the state): removing one from a
  linearization of the original leaves a linearization, so the smaller history violating
  proves the original does. Tried first, in halving chunks; then the cut (kept only when it
  removes calls), then the observers once more.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from stress.checker._engine import check
from stress.checker._types import Event, Model, Verdict

# Each re-check may take this many times the first check, and at least MIN_CHECK_SECONDS.
CHECK_FACTOR = 10.0
MIN_CHECK_SECONDS = 0.2

# The re-check: the failing partition of a candidate history, or None when it does not violate.
_Violating = Callable[[Sequence[Event]], tuple[Event, ...] | None]


def minimize(
    model: Model, events: Sequence[Event], *, timeout: float | None = None
) -> tuple[Event, ...]:
    """A smaller history that still violates; ``events`` unchanged if it is not (known) violating.

    ``timeout`` bounds the whole shrinking: when it runs out, the smallest violating history
    found so far is returned.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    per_check: list[float | None] = [None]  # budget of each re-check, set after the first

    def violating(candidate: Sequence[Event]) -> tuple[Event, ...] | None:
        budget = per_check[0]
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            budget = left if budget is None else min(budget, left)
        result = check(model, candidate, timeout=budget, workers=1)
        if result.verdict is Verdict.VIOLATION and result.counterexample is not None:
            return result.counterexample.events
        return None

    start = time.monotonic()
    current = violating(events)
    # A smaller history can be much harder to judge (fewer observers to constrain the
    # search): bound each re-check, an UNKNOWN just means that step is not taken.
    per_check[0] = max(MIN_CHECK_SECONDS, CHECK_FACTOR * (time.monotonic() - start))
    if current is None:
        return tuple(events)
    # Observers first: dropping them removes calls outright, while a cut that removes no call
    # only turns answered calls into pending ones, which says less.
    current = _drop_observers(model, current, violating)
    shrunk = _cut(current, violating)
    if len(shrunk) < len(current):
        shrunk = _drop_observers(model, shrunk, violating)
    return shrunk


def prefix_at(events: Sequence[Event], t: int) -> list[Event]:
    """The history as seen at time t: later calls dropped, calls in flight made pending."""
    return [
        e if e.ret is not None and e.ret <= t else e.replace(ret=None)
        for e in events
        if e.call <= t
    ]


def _cut(events: tuple[Event, ...], violating: _Violating) -> tuple[Event, ...]:
    """The earliest violating prefix, cut only where no answered call is in flight.

    Cutting through an answered call would turn it into a pending one: fewer facts, and a
    counterexample that reads as if the call never returned. So the cut points are the times
    at which every answered call has either returned or not yet been made.
    """
    spans = sorted((e.call, e.ret) for e in events if e.ret is not None)
    times = []
    busy_until = -1
    for call, ret in spans:
        if call > busy_until and busy_until >= 0:
            times.append(busy_until)
        busy_until = max(busy_until, ret)
    times.append(max([busy_until, *(e.call for e in events)]))
    best = events
    lo, hi = 0, len(times) - 1  # prefix_at(times[-1]) is the whole history
    while lo < hi:
        mid = (lo + hi) // 2
        found = violating(prefix_at(events, times[mid]))
        if found is None:
            lo = mid + 1
        else:
            best, hi = found, mid
    return best if len(best) < len(events) else events


def _drop_observers(
    model: Model, events: tuple[Event, ...], violating: _Violating
) -> tuple[Event, ...]:
    current = events
    observers = [e for e in events if e.ret is not None and model.is_observer(e.input, e.output)]
    chunk = len(observers)
    while chunk >= 1 and observers:
        for start in range(0, len(observers), chunk):
            drop = {id(e) for e in observers[start : start + chunk]}
            found = violating([e for e in current if id(e) not in drop])
            if found is not None:
                current = found
        present = {id(e) for e in current}
        observers = [e for e in observers if id(e) in present]
        chunk //= 2
    return current
