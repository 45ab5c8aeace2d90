"""Values and protocols of the linearizability engine: events, models, verdicts, results.

Nothing here knows about `mm`: a model adapts any sequential specification to the engine.
"""

from __future__ import annotations

import operator
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs
import msgspec

from stress.verdict import Verdict


class Event(msgspec.Struct, frozen=True, gc=False):
    """One call of a history: completed (``ret`` set) or pending (``ret is None``).

    A frozen msgspec Struct rather than an attrs class: a history holds millions of events,
    and a Struct is built about ten times faster and is not tracked by the cyclic GC (it
    refers only to immutable values). `replace` gives a changed copy.

    A pending call got no response: it may have taken effect at any time after ``call``, or
    never. ``output`` is ignored for pending calls. ``call``/``ret`` are ordered integers
    (monotonic nanoseconds, or line numbers).
    """

    task: int
    input: Any
    output: Any
    call: int
    ret: int | None

    @property
    def pending(self) -> bool:
        """True when the call has no response."""
        return self.ret is None

    def replace(self, **changes: Any) -> Event:
        """A copy with ``changes`` (field names as keywords)."""
        return msgspec.structs.replace(self, **changes)


BY_CALL = operator.attrgetter("call")  # sort key: events in call order (C speed)


@runtime_checkable
class Model(Protocol):
    """A sequential specification, as a plain picklable object of pure functions."""

    def init(self) -> Hashable:
        """The initial state."""
        ...

    def step(self, state: Any, input: Any, output: Any) -> Hashable | None:
        """The state after ``input`` returned ``output`` in ``state``; None when illegal."""
        ...

    def pending_outcomes(self, state: Any, input: Any) -> Iterable[Hashable]:
        """Every state a pending call may leave behind if it did take effect."""
        ...

    def partition(self, events: Sequence[Event]) -> list[list[Event]]:
        """Independent sub-histories (each checked on its own); default: one part."""
        ...

    def is_observer(self, input: Any, output: Any) -> bool:
        """True when a completed call with this output never changes any state it is legal in."""
        ...

    def describe_operation(self, event: Event) -> str:
        """The call and its result, in words."""
        ...

    def describe_state(self, state: Any) -> str:
        """A state, in words."""
        ...

    def explain(self, prefix: Sequence[Event], state: Any, event: Event) -> str:
        """Why ``event`` cannot be linearized next after ``prefix`` (which left ``state``)."""
        ...


class BaseModel:
    """Defaults for the optional parts of `Model`; subclasses supply init/step/pending_outcomes."""

    def init(self) -> Hashable:
        raise NotImplementedError

    def step(self, state: Any, input: Any, output: Any) -> Hashable | None:
        raise NotImplementedError

    def pending_outcomes(self, state: Any, input: Any) -> Iterable[Hashable]:
        raise NotImplementedError

    def partition(self, events: Sequence[Event]) -> list[list[Event]]:
        return [list(events)]

    def is_observer(self, input: Any, output: Any) -> bool:
        return False

    def hopeless(self, state: Any, input: Any, output: Any) -> bool:
        """Optional pruning, with `revives`: True only when the completed call ``input ->
        output`` is illegal in ``state`` and stays illegal in every state that calls not
        reviving it (see `revives`) lead to from ``state``. The default never prunes.

        Formally: let H(s) be this predicate (for the one call e). It must hold that H(s)
        implies ``step(s, e) is None``, and that H(s) implies H(s') for every s' that a call
        ``by`` with ``revives(e, by)`` False can lead to from s (``step`` if ``by`` is completed,
        any of its ``pending_outcomes`` if not). Calls the engine knows to be observers are never
        asked: they keep every state they are legal in.
        """
        return False

    def revives(self, event: Event, by: Event) -> bool:
        """May the call ``by`` turn a state in which ``event`` is `hopeless` into one where
        it is not? (True is always safe; False must be sure, see `hopeless`.)"""
        return True

    def disturbs(self, input: Any, output: Any, by: Event) -> bool:
        """May a step of the call ``by`` change whether a call ``input -> output`` is
        `hopeless`? Only a hint of where to look (True is always safe; a wrong False loses
        pruning, never a verdict): keys of a store that ``by`` does not touch, say."""
        return True

    def describe_operation(self, event: Event) -> str:
        result = "no response" if event.ret is None else repr(event.output)
        return f"{event.input!r} -> {result}"

    def describe_state(self, state: Any) -> str:
        return repr(state)

    def explain(self, prefix: Sequence[Event], state: Any, event: Event) -> str:
        return (
            f"task {event.task}'s {self.describe_operation(event)} is impossible in state "
            f"{self.describe_state(state)}"
        )


@attrs.frozen
class Counterexample:
    """Why a partition is not linearizable.

    ``linearized`` indexes ``events``: the longest order the search could build; ``stuck`` gives,
    for each event that could have come next after it, why it could not (model's words).
    """

    events: tuple[Event, ...]
    linearized: tuple[int, ...]
    stuck: tuple[tuple[int, str], ...]


@attrs.frozen
class CheckResult:
    """The outcome of `check`; ``reason`` is one line saying why VIOLATION or UNKNOWN."""

    verdict: Verdict
    reason: str
    operations: int
    partitions: int
    partitions_checked: int
    seconds: float
    counterexample: Counterexample | None = None
