"""Checking an mm history: the race pass first, then the engine's search.

`check_events` is what `check_history` and `mmrace check` run. The history is partitioned
(`_mm_partition`: time cuts and footprints, each part independent and checked from the empty
address space). When the race pass finds a definite double win (its argument covers the whole
history), only the part that holds both calls is searched: the part is an independent piece of
the history, so the search's counterexample on it is a true violation of the history, and every
sentence said about it holds in the history too. Otherwise each part that a direct order
explains (`witness`) is done, and the engine searches the rest within the time budget.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from typing import Any

import attrs

import mm
from stress.checker._engine import (
    POOL_MIN_EVENTS,
    POOL_MIN_PARTITIONS,
    all_linearizable,
    check,
)
from stress.checker._minimize import minimize
from stress.checker._mm_model import MmModel, no_collection
from stress.checker._mm_partition import SMALL, partition, time_segments
from stress.checker._mm_places import guessed, places_for
from stress.checker._mm_shift import moved_segments
from stress.checker._race_pass import race_pass
from stress.checker._types import BY_CALL, BaseModel, CheckResult, Event, Verdict


@attrs.frozen
class Tuning:
    """When the reductions switch on. Verdicts never depend on these (each reduction is sound
    at any size); they only trade speed. Tests set them to 0 so tiny histories go through every
    reduction (`tests/checker/test_oracle.py`).

    `split_above`: segments longer than this are split by footprint; `pool_min_events` and
    `pool_min_partitions`: the engine's process pool; `direct_orders`: settle a part that a
    direct order explains (`witness`) without searching it; `move_segments`: try the direct
    orders on the time segments moved to one base first (`_mm_shift`: calls then repeat).
    """

    split_above: int = SMALL
    pool_min_events: int = POOL_MIN_EVENTS
    pool_min_partitions: int = POOL_MIN_PARTITIONS
    direct_orders: bool = True
    move_segments: bool = True

    @classmethod
    def everything(cls) -> Tuning:
        """Every reduction on, whatever the size: footprints, the pool, no direct orders."""
        return cls(split_above=0, pool_min_events=0, pool_min_partitions=1, direct_orders=False)


def check_events(
    params: mm.Params,
    events: Sequence[Event],
    rounds: Sequence[int] | None = None,
    *,
    timeout: float | None = None,
    workers: int | None = None,
    tuning: Tuning = Tuning(),
    segments: Sequence[list[Event]] | None = None,
) -> CheckResult:
    """Is the history linearizable with respect to the `mm` spec? (see the module docstring).
    ``segments``: the events cut at clean cuts already (`_mm_partition.partition`)."""
    # The events are many long-lived acyclic objects: move them out of the cyclic GC's sight
    # for the duration of the check, so that collections triggered by the search stay cheap.
    gc.freeze()
    try:
        return _check_events(params, events, rounds, timeout, workers, tuning, segments)
    finally:
        gc.unfreeze()


def _check_events(
    params: mm.Params,
    events: Sequence[Event],
    rounds: Sequence[int] | None,
    timeout: float | None,
    workers: int | None,
    tuning: Tuning,
    segments: Sequence[list[Event]] | None = None,
) -> CheckResult:
    start = time.monotonic()
    model = MmModel(params, places_for(events, params))
    note = ""
    findings = race_pass(events, params, rounds)
    if findings:
        finding = findings[0]
        first = events[finding.first]
        parts = partition(
            events, params, split_above=tuning.split_above, holding=first, segments=segments
        )
        part = _part_of(parts, first)
        confirmed = check(model, part, timeout=timeout, partitioned=False, workers=1)
        if confirmed.verdict is not Verdict.OK:
            found = confirmed.verdict is Verdict.VIOLATION
            return CheckResult(
                verdict=Verdict.VIOLATION,
                reason=finding.message
                + (
                    " (the search confirms it)"
                    if found
                    else " (proved by the race pass; the search ran out of time before it "
                    "built a counterexample)"
                ),
                operations=len(events),
                partitions=len(parts),
                partitions_checked=1 if found else 0,
                seconds=time.monotonic() - start,
                counterexample=confirmed.counterexample if found else None,
            )
        note = f"; the race pass flagged {finding.message!r} but the search did not confirm it"
    with no_collection():
        moved_settled = 0  # parts of moved segments that a direct order explained
        if tuning.direct_orders and tuning.move_segments:
            segments, moved_settled = _settle_moved(model, events, segments, tuning.split_above)
        parts = partition(events, params, split_above=tuning.split_above, segments=segments)
        rest = [
            part
            for part in parts
            if not (tuning.direct_orders and witness(model, part, in_call_order=True))
        ]
    budget = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
    flat = [e for part in rest for e in part]
    result = check(
        _Split(model, rest),
        flat,
        timeout=budget,
        workers=workers,
        pool_min_events=tuning.pool_min_events,
        pool_min_partitions=tuning.pool_min_partitions,
    )
    direct = moved_settled + len(parts) - len(rest)
    total = moved_settled + len(parts)
    reason = result.reason
    if result.verdict is Verdict.OK:
        reason = f"{all_linearizable(total)} ({direct} by a direct order, {len(rest)} by search)"
    elif direct:  # the engine numbered only the searched parts: say how many there were
        reason = (
            f"{reason}; of the history's {total} partitions, {direct} were explained by "
            f"a direct order and {len(rest)} searched"
        )
    result = attrs.evolve(
        result,
        operations=len(events),
        partitions=total,
        partitions_checked=result.partitions_checked + direct,
        seconds=time.monotonic() - start,
        reason=reason + note,
    )
    if (
        result.verdict is Verdict.VIOLATION
        and result.counterexample is not None
        and model.places is None  # with places every placement that matters was tried
    ):
        guess = guessed(result.counterexample.events, model.params)
        if guess:
            return attrs.evolve(
                result,
                verdict=Verdict.UNKNOWN,
                reason=(
                    f"{result.reason}, but it holds a non-fixed mmap with no response (task "
                    f"{guess[0].task}) that may have mapped anywhere; the search only tried its "
                    f"hint or the spec's placement (the history is too large for the complete "
                    f"set of placements, or has MAP_GROWSDOWN)"
                ),
            )
    return result


def _settle_moved(
    model: MmModel,
    events: Sequence[Event],
    segments: Sequence[list[Event]] | None,
    split_above: int,
) -> tuple[Sequence[list[Event]], int]:
    """The direct orders on the time segments moved to one base (`_mm_shift`): the segments
    left to judge as recorded (those with a part no direct order explained, and those that did
    not move) and how many parts of the others were explained."""
    params = model.params
    cut = time_segments(events, params) if segments is None else segments
    moved = moved_segments(cut, params)
    if moved is None:
        return cut, 0
    chosen = [k for k, (a, b) in enumerate(zip(moved, cut, strict=True)) if a is not b]
    parts = partition(events, params, split_above=split_above, segments=[moved[k] for k in chosen])
    owner = {id(e): k for k in chosen for e in moved[k]}
    settled: dict[int, int] = {}  # moved segment -> its parts explained (-1: one was not)
    for part in parts:
        k = owner[id(part[0])]
        if settled.get(k, 0) >= 0:
            settled[k] = settled.get(k, 0) + 1 if witness(model, part, in_call_order=True) else -1
    left = {k for k in chosen if settled.get(k, -1) < 0}  # (a segment with no part: as is)
    keep = [segment for k, segment in enumerate(cut) if k in left or moved[k] is segment]
    return keep, sum(n for n in settled.values() if n > 0)


MINIMIZE_SECONDS = 20.0


def minimized(model: MmModel, result: CheckResult, timeout: float | None) -> CheckResult:
    """The result with its counterexample shrunk by the engine's sound steps (the original one
    if shrinking fails or runs out of time). Spends at most ``MINIMIZE_SECONDS`` (or
    ``timeout``, when smaller)."""
    assert result.counterexample is not None
    if model.places is None:  # the counterexample's own places (they serve its sub-histories)
        model = attrs.evolve(model, places=places_for(result.counterexample.events, model.params))
    budget = MINIMIZE_SECONDS if timeout is None else min(MINIMIZE_SECONDS, timeout)
    deadline = time.monotonic() + budget
    smaller = minimize(model, result.counterexample.events, timeout=budget)
    left = max(0.1, deadline - time.monotonic())
    again = check(model, smaller, timeout=left, workers=1)
    if again.verdict is not Verdict.VIOLATION or again.counterexample is None:
        return result
    return attrs.evolve(result, counterexample=again.counterexample)


def witness(model: MmModel, part: Sequence[Event], *, in_call_order: bool = False) -> bool:
    """Is there an obvious linearization? Call order, pending calls left out, except that a
    call that is illegal in turn may wait for a later-invoked call that is legal now and that
    no waiting call had to precede (real time, and program order: never a later call of a
    waiting call's task). True proves the part linearizable; False only means the search must
    decide. ``in_call_order``: the part is sorted by call already (a `partition` part).

    Program order is the engine's (`_search.time_order`): a task's calls invoked at one
    instant go in order of return, so a call is never taken while a call of its task invoked
    at that instant and returning earlier waits (malformed histories only: a task is
    sequential); then no witness is claimed."""
    order = part if in_call_order else sorted(part, key=BY_CALL)
    n = len(order)
    if len({e.call for e in order}) < n and _ties_out_of_program_order(order):
        return False
    done = [False] * n
    state = model.init()
    step = model.stepper()
    # the step results in the current state, by (op identity, result): the calls of a part
    # repeat (a race's losers), and a lookup here is cheaper than a call of `step`
    here: dict[tuple[int, Any], Any] = {}
    k = 0
    while k < n:
        e = order[k]
        if done[k] or e.ret is None:
            k += 1
            continue
        key = (id(e.input), e.output)
        after = here.get(key, _UNSEEN)
        if after is _UNSEEN:
            after = here[key] = step(state, e.input, e.output)
        if after is not None:
            if after is not state:
                state, here = after, {}
            done[k] = True
            k += 1
            continue
        # promote the first later call that is legal now and may come before the waiting ones
        bound = e.ret
        waiting = {e.task}
        for j in range(k + 1, n):
            f = order[j]
            if f.call > bound:
                return False
            if done[j]:
                continue
            if f.ret is None:
                continue
            if f.task not in waiting:
                key = (id(f.input), f.output)
                after = here.get(key, _UNSEEN)
                if after is _UNSEEN:
                    after = here[key] = step(state, f.input, f.output)
                if after is not None:
                    if after is not state:
                        state, here = after, {}
                    done[j] = True
                    break
            waiting.add(f.task)  # f waits too: it bounds what may still come before
            if f.ret < bound:
                bound = f.ret
        else:
            return False
    return True


_UNSEEN = object()
_NEVER = 1 << 128


def _ties_out_of_program_order(order: Sequence[Event]) -> bool:
    """Do two calls of one task, invoked at one instant, stand in the order against their
    program order (earlier return first, a pending one last)? The witness walks call order,
    ties in the order given, so it could take them the wrong way round."""
    k = 0
    n = len(order)
    while k < n:
        j = k + 1
        while j < n and order[j].call == order[k].call:
            j += 1
        if j - k > 1:
            last: dict[Any, int] = {}
            for e in order[k:j]:
                ret = _NEVER if e.ret is None else e.ret
                if last.get(e.task, -1) > ret:
                    return True
                last[e.task] = ret
        k = j
    return False


class _Split(BaseModel):
    """``model`` with a precomputed partition, for the engine's one `partition` call; it
    pickles as the plain model (worker processes never partition)."""

    def __init__(self, model: MmModel, parts: list[list[Event]]) -> None:
        self.model = model
        self.parts = parts
        self.init = model.init  # type: ignore[method-assign]
        self.step = model.step  # type: ignore[method-assign]
        self.pending_outcomes = model.pending_outcomes  # type: ignore[method-assign]
        self.is_observer = model.is_observer  # type: ignore[method-assign]
        self.describe_operation = model.describe_operation  # type: ignore[method-assign]
        self.describe_state = model.describe_state  # type: ignore[method-assign]
        self.explain = model.explain  # type: ignore[method-assign]

    def partition(self, events: Sequence[Event]) -> list[list[Event]]:
        return self.parts

    def __reduce__(self) -> tuple[Any, ...]:
        return (MmModel, (self.model.params, self.model.places))


def _part_of(parts: Sequence[Sequence[Event]], event: Event) -> list[Event]:
    """The part of the partition that holds ``event`` (by identity)."""
    for part in parts:
        if any(e is event for e in part):
            return list(part)
    raise AssertionError("every event is in one part")
