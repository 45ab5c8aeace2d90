"""A key-value store of strings with get / put / append; every key starts as "".

Inputs are tuples ``(GET, key, None)``, ``(PUT, key, value)``, ``(APPEND, key, value)``; a get
returns the value, put and append return None. The state is the whole map as a pair of tuples
``(keys, values)``, keys sorted and empty values left out, so equal maps compare equal and the
model works both partitioned by key (each part then holds one key) and unpartitioned.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Final

from stress.checker import BaseModel, Event

GET: Final = "get"
PUT: Final = "put"
APPEND: Final = "append"

KvState = tuple[tuple[str, ...], tuple[str, ...]]
EMPTY: Final[KvState] = ((), ())


def lookup(state: KvState, key: str) -> str:
    """The value of ``key`` in ``state``."""
    keys, values = state
    return values[keys.index(key)] if key in keys else ""


def assign(state: KvState, key: str, value: str) -> KvState:
    """``state`` with ``key`` set to ``value`` (an empty value removes the key)."""
    keys, values = state
    if key in keys:
        j = keys.index(key)
        if value:
            return keys, (*values[:j], value, *values[j + 1 :])
        return (*keys[:j], *keys[j + 1 :]), (*values[:j], *values[j + 1 :])
    if not value:
        return state
    j = bisect.bisect(keys, key)
    return (*keys[:j], key, *keys[j:]), (*values[:j], value, *values[j:])


class KvModel(BaseModel):
    """The store's sequential specification; partitions by key."""

    def init(self) -> Hashable:
        return EMPTY

    def step(self, state: Any, input: Any, output: Any) -> Hashable | None:
        op, key, value = input
        keys = state[0]
        if op == GET:
            if key in keys:
                return state if state[1][keys.index(key)] == output else None
            return state if output == "" else None
        if op == PUT:
            return assign(state, key, value)
        return assign(state, key, lookup(state, key) + value)

    def pending_outcomes(self, state: Any, input: Any) -> Iterable[Hashable]:
        if input[0] == GET:
            return (state,)
        return (self.step(state, input, None),)

    def partition(self, events: Sequence[Event]) -> list[list[Event]]:
        parts: dict[str, list[Event]] = {}
        for e in events:
            parts.setdefault(e.input[1], []).append(e)
        return list(parts.values())

    def is_observer(self, input: Any, output: Any) -> bool:
        return bool(input[0] == GET)

    def hopeless(self, state: Any, input: Any, output: Any) -> bool:
        """A get of ``v`` while the key holds something that is not a prefix of ``v``: appends
        only lengthen the value, so only a put of a prefix of ``v`` can help (`revives`)."""
        return input[0] == GET and not output.startswith(lookup(state, input[1]))

    def disturbs(self, input: Any, output: Any, by: Event) -> bool:
        return bool(by.input[1] == input[1])  # a call on another key leaves this one as it is

    def revives(self, event: Event, by: Event) -> bool:
        op, key, value = by.input
        if event.input[0] != GET:
            return True
        return op == PUT and key == event.input[1] and event.output.startswith(value)

    def describe_operation(self, event: Event) -> str:
        op, key, value = event.input
        if op == GET:
            got = "no response" if event.ret is None else repr(event.output)
            return f"get {key!r} -> {got}"
        return f"{op} {key!r} {value!r}"

    def describe_state(self, state: Any) -> str:
        keys, values = state
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in zip(keys, values, strict=True)) + "}"

    def explain(self, prefix: Sequence[Event], state: Any, event: Event) -> str:
        key = event.input[1]
        return (
            f"task {event.task}'s get {key!r} returned {event.output!r}, but {key!r} holds "
            f"{lookup(state, key)!r}"
        )
