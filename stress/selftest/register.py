"""A single register with read / write / compare-and-set, starting empty (etcd's Jepsen test).

Inputs are tuples: ``(READ,)``, ``(WRITE, value)``, ``(CAS, expected, new)``. Outputs: a read
returns the value (None = empty, `UNKNOWN` = the read timed out, any value allowed); a write
returns None; a cas returns True when it swapped, False when it did not. The state is ``()``
when empty and ``(value,)`` otherwise (None cannot be a state: it means "illegal" to the engine).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Final

from stress.checker import BaseModel, Event

READ: Final = "read"
WRITE: Final = "write"
CAS: Final = "cas"


class _Unknown:
    """The output of a call whose result was lost (e.g. a timed-out read): anything goes."""

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __reduce__(self) -> str:
        return "UNKNOWN"  # unpickles to the module's singleton


UNKNOWN: Final = _Unknown()
EMPTY: Final[tuple[()]] = ()


class RegisterModel(BaseModel):
    """The register's sequential specification."""

    def init(self) -> Hashable:
        return EMPTY

    def step(self, state: Any, input: Any, output: Any) -> Hashable | None:
        op = input[0]
        if op == READ:
            if output is UNKNOWN or (output is None and state == EMPTY) or state == (output,):
                return state
            return None
        if op == WRITE:
            return (input[1],)
        if output:
            return (input[2],) if state == (input[1],) else None
        return state if state != (input[1],) else None

    def pending_outcomes(self, state: Any, input: Any) -> Iterable[Hashable]:
        op = input[0]
        if op == WRITE:
            return ((input[1],),)
        if op == CAS and state == (input[1],):
            return ((input[2],),)
        return (state,)

    def is_observer(self, input: Any, output: Any) -> bool:
        op = input[0]
        return op == READ or (op == CAS and (not output or input[1] == input[2]))

    def hopeless(self, state: Any, input: Any, output: Any) -> bool:
        """A read of ``v`` (or a successful cas from ``v``) while the register does not hold
        ``v``: only a write of ``v`` or a cas to ``v`` can bring it back (`revives`)."""
        op = input[0]
        if op == READ:
            return output is not UNKNOWN and self.step(state, input, output) is None
        return op == CAS and bool(output) and state != (input[1],)

    def revives(self, event: Event, by: Event) -> bool:
        op = event.input[0]
        if op == READ:
            wanted = event.output
        elif op == CAS and event.output:
            wanted = event.input[1]
        else:
            return True
        if by.input[0] == WRITE:
            return bool(by.input[1] == wanted)
        # a cas that failed changes nothing (a pending one may have swapped)
        return by.input[0] == CAS and (by.ret is None or bool(by.output)) and by.input[2] == wanted

    def describe_operation(self, event: Event) -> str:
        op = event.input[0]
        if op == READ:
            got = "no response" if event.ret is None else _value(event.output)
            return f"read -> {got}"
        if op == WRITE:
            return f"write {_value(event.input[1])}"
        outcome = "no response" if event.ret is None else ("ok" if event.output else "failed")
        return f"cas {_value(event.input[1])}->{_value(event.input[2])} ({outcome})"

    def describe_state(self, state: Any) -> str:
        return _state(state)

    def explain(self, prefix: Sequence[Event], state: Any, event: Event) -> str:
        op = event.input[0]
        now = f"the register holds {_state(state)}"
        if op == READ:
            return f"task {event.task}'s read returned {_value(event.output)}, but {now}"
        if event.output:
            return f"task {event.task}'s cas from {_value(event.input[1])} succeeded, but {now}"
        return f"task {event.task}'s cas from {_value(event.input[1])} failed, but {now}"


def _value(value: Any) -> str:
    return "nil" if value is None else repr(value) if value is UNKNOWN else str(value)


def _state(state: Any) -> str:
    return "nil" if state == EMPTY else str(state[0])
