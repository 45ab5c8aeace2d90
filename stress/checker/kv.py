"""A key-value store of strings with get / put / append; every key starts as "".

Inputs are tuples ``(GET, key, None)``, ``(PUT, key, value)``, ``(APPEND, key, value)``; a get
returns the value, put and append return None. The state is the whole map as a sorted tuple of
(key, value) pairs without empty values (hashable, and equal maps compare equal), so the model
works both partitioned by key (each part then holds one key) and unpartitioned.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Final

from stress.checker._types import BaseModel, Event

GET: Final = "get"
PUT: Final = "put"
APPEND: Final = "append"

KvState = tuple[tuple[str, str], ...]


def lookup(state: KvState, key: str) -> str:
    """The value of ``key`` in ``state``."""
    for k, v in state:
        if k == key:
            return v
    return ""


def assign(state: KvState, key: str, value: str) -> KvState:
    """``state`` with ``key`` set to ``value`` (empty values are left out)."""
    items = [(k, v) for k, v in state if k != key]
    if value:
        items.append((key, value))
        items.sort()
    return tuple(items)


class KvModel(BaseModel):
    """The store's sequential specification; partitions by key."""

    def init(self) -> Hashable:
        return ()

    def step(self, state: Any, input: Any, output: Any) -> Hashable | None:
        op, key, value = input
        if op == GET:
            return state if lookup(state, key) == output else None
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

    def describe_operation(self, event: Event) -> str:
        op, key, value = event.input
        if op == GET:
            got = "no response" if event.ret is None else repr(event.output)
            return f"get {key!r} -> {got}"
        return f"{op} {key!r} {value!r}"

    def describe_state(self, state: Any) -> str:
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in state) + "}"

    def explain(self, prefix: Sequence[Event], state: Any, event: Event) -> str:
        key = event.input[1]
        return (
            f"task {event.task}'s get {key!r} returned {event.output!r}, but {key!r} holds "
            f"{lookup(state, key)!r}"
        )
