"""The `mm` specification as a model for the linearizability engine, and `check_history`.

Inputs are `mm.Op` values, outputs raw results; a step is `mm.step_observed`, so errors are
legal exactly when the spec gives them and non-fixed placements are checked with the
allowed-placement predicate, never predicted.

Pending calls (no response): a fixed call, munmap or mprotect that took effect did so with the
spec's result in the state where it took effect, so its outcome is that state's successor.
A pending *non-fixed* mmap may have mapped any free range: the model tries the spec's own
placement and, when the history has `Places` (`_mm_places`), every candidate placement, which
is complete on its domain. Without places a VIOLATION that needs such a call might be explained
by another placement, so `check_events` turns it into UNKNOWN.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any

import attrs

import mm
from stress.checker import _mm_partition as _part
from stress.checker._mm_places import Places
from stress.checker._types import BaseModel, Event

# step cache shared by every model with the same params (and kept across partitions, also in
# worker processes): a race history repeats the same few (state, op, result) triples.
# Keyed by id(params) and holding the params object, so that a lookup costs no hashing.
_STEPPERS: dict[int, tuple[mm.Params, Callable[[Any, Any, Any], Hashable | None]]] = {}
_CACHE_LIMIT = 200_000
_ILLEGAL = object()


def _cached_step(params: mm.Params) -> Callable[[Any, Any, Any], Hashable | None]:
    """`mm.step_observed` under ``params``, memoized on (state, call, result): the states of
    a history repeat. Two levels: by the identity of the state and the call (no hashing in
    Python; a hit is checked to hold the very objects, so a reused id never answers), then by
    value (states and ops cache their hashes), which also makes equal states one object."""
    by_id: dict[tuple[int, int, Any], tuple[Any, Any, Any]] = {}
    by_value: dict[tuple[Any, Any, Any], Any] = {}
    get_id = by_id.get
    get_value = by_value.get
    step_observed = mm.step_observed

    def step(state: Any, input: Any, output: Any) -> Hashable | None:
        key = (id(state), id(input), output)
        hit = get_id(key)
        if hit is not None and hit[0] is state and hit[1] is input:
            after = hit[2]
        else:
            value_key = (state, input, output)
            after = get_value(value_key)
            if after is None:
                if len(by_value) > _CACHE_LIMIT:
                    by_value.clear()
                got = step_observed(state, params, input, output)
                after = by_value[value_key] = _ILLEGAL if got is None else got
            if len(by_id) > _CACHE_LIMIT:
                by_id.clear()
            by_id[key] = (state, input, after)
        return None if after is _ILLEGAL else after

    return step


@attrs.frozen
class MmModel(BaseModel):
    """The `mm` spec with machine parameters ``params``; picklable (it holds only values).

    ``places``: where a pending non-fixed mmap of this history may have mapped (None: the
    spec's placement only)."""

    params: mm.Params = attrs.field(factory=mm.Params.reference)
    places: Places | None = None

    def init(self) -> Hashable:
        return mm.State.empty()

    def step(self, state: Any, input: Any, output: Any) -> Hashable | None:
        return self.stepper()(state, input, output)

    def stepper(self) -> Callable[[Any, Any, Any], Hashable | None]:
        """`step` with its cache looked up once (for loops that step many times)."""
        entry = _STEPPERS.get(id(self.params))
        if entry is None or entry[0] is not self.params:
            entry = _STEPPERS[id(self.params)] = (self.params, _cached_step(self.params))
        return entry[1]

    def pending_outcomes(self, state: Any, input: Any) -> Iterable[Hashable]:
        params = self.params
        decided = mm.plan(state, params, input)
        if not decided.changes:
            return
        spec = mm.commit(state, decided.changes)
        yield spec
        if self.places is None or not mm.is_nonfixed(input) or decided.result < 0:
            return
        seen = {spec}
        page = params.page_size
        for x in self.places.candidates(state, mm.page_length(input.length, page), page):
            after = mm.step_observed(state, params, input, x)
            if after is not None and after not in seen:
                seen.add(after)
                yield after

    def is_observer(self, input: Any, output: Any) -> bool:
        """Failures that change nothing in any state: every failed mmap and munmap, and a failed
        mprotect except ENOMEM (a hole after the first mapping leaves the walked part changed);
        an mprotect of length 0 succeeds without effect."""
        if output >= 0:
            return input.kind == "mprotect" and input.length % _part.U64 == 0
        return input.kind != "mprotect" or output != -mm.ENOMEM

    def partition(self, events: Sequence[Event]) -> list[list[Event]]:
        return _part.partition(events, self.params)

    def describe_operation(self, event: Event) -> str:
        op = event.input
        if event.ret is None:
            return f"{op} -> no response"
        return f"{op} -> {mm.format_result(op.kind, event.output)}"

    def describe_state(self, state: Any) -> str:
        return describe_state(state)

    def explain(self, prefix: Sequence[Event], state: Any, event: Event) -> str:
        from stress.checker._mm_explain import explain

        return explain(self.params, prefix, state, event)


def describe_state(state: mm.State, limit: int = 6) -> str:
    """The mappings in words, at most ``limit`` of them."""
    if not state.mappings:
        return "nothing mapped"
    shown = ", ".join(str(m) for m in state.mappings[:limit])
    more = len(state.mappings) - limit
    return shown + (f" and {more} more mappings" if more > 0 else "")


def to_events(ops: Iterable[Any]) -> tuple[list[Event], list[int]]:
    """Engine events and their rounds from `stress.history.Operation` records (identical calls
    share one `mm.Op`)."""
    events: list[Event] = []
    rounds: list[int] = []
    with no_collection():  # a million small acyclic objects: nothing for the GC to find
        records = ops.records() if hasattr(ops, "records") else _fields(ops)
        append, add_round = events.append, rounds.append
        for task, op, result, call, ret, rnd in records:
            append(Event(task, op, result, call, ret))
            add_round(rnd)
    return events, rounds


@contextlib.contextmanager
def no_collection() -> Iterator[None]:
    """The cyclic GC off for a pass that allocates an object or a few per event and makes no
    reference cycles: the collections its allocations trigger would rescan live objects and
    find nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _fields(ops: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
    for o in ops:
        yield o.task, o.op, o.result, o.call, o.ret, o.round


def params_of(header: Any) -> mm.Params:
    """The model parameters recorded in a history header (the reference machine if none)."""
    from stress.errors import UsageError

    if not header.params:
        privileged = True if header.privileged is None else header.privileged
        return mm.Params.reference(privileged=privileged)
    try:
        return mm.Params.from_json(header.params)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"history header: params: {exc}") from None


def check_history(
    header: Any, ops: Iterable[Any], timeout: float | None = None, *, workers: int | None = None
) -> Any:
    """Check a history read by `stress.history.read_history`; returns a `CheckResult`.

    First the race pass screens for a definite double win; when it finds one, only that part is
    searched (and the search confirms it), so a broken round is reported at once. Otherwise the
    whole history is searched within ``timeout`` seconds.
    """
    from stress.checker._mm_check import check_events

    events, rounds = to_events(ops)
    return check_events(params_of(header), events, rounds, timeout=timeout, workers=workers)
