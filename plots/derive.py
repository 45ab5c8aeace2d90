"""Plot data derived from recorded operations (`stress.history.Operation`): pure functions.

A round is setup (serial, task 0) + race (all tasks) + cleanup (serial, task 0). Only the race
says anything about the atomic probe, so wins, latencies and lock waits count racing calls only.
"""

from __future__ import annotations

import errno
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from plots.data import (
    EEXIST,
    OTHER,
    WON,
    Latencies,
    LockWaits,
    Timeline,
    TimelineCall,
)

MAP_FIXED_NOREPLACE = 0x100000
_EEXIST = -errno.EEXIST


class OpLike(Protocol):
    """What this module reads of a `stress.history.Operation`."""

    task: int
    result: int | None
    call: int
    ret: int | None
    round: int

    @property
    def op(self) -> Any: ...


def outcome_class(op: OpLike) -> str | None:
    """``won`` (a successful mmap), ``EEXIST`` (a probe that lost), ``other``; None: pending."""
    if op.result is None:
        return None
    if op.op.kind == "mmap" and op.result >= 0:
        return WON
    if op.result == _EEXIST:
        return EEXIST
    return OTHER


def format_result(kind: str, result: int | None) -> str:
    """A raw result in words: an address in hex, 0, an errno name, or "pending"."""
    if result is None:
        return "pending"
    if result < 0:
        return errno.errorcode.get(-result, str(result))
    if kind == "mmap":
        return f"{result:#x}"
    return str(result)


def describe(op: OpLike) -> str:
    """A short label: ``mmap 0x100000000000+0x1000 → EEXIST``."""
    c = op.op
    return f"{c.kind} {c.addr:#x}+{c.length:#x} → {format_result(c.kind, op.result)}"


def is_probe(op: OpLike) -> bool:
    """Is this a MAP_FIXED_NOREPLACE mmap (an atomic probe)?"""
    return op.op.kind == "mmap" and bool(op.op.flags & MAP_FIXED_NOREPLACE)


_OP_TEXT = re.compile(r"^(\w+)\((0x[0-9a-f]+|\d+), (0x[0-9a-f]+|\d+)")


def short_op(text: str) -> str:
    """``mmap(0x1000, 0x2000, PROT_READ, ...)`` -> ``mmap 0x1000+0x2000`` (else unchanged)."""
    m = _OP_TEXT.match(text)
    return f"{m.group(1)} {m.group(2)}+{m.group(3)}" if m else text


def split_rounds(ops: Iterable[OpLike]) -> dict[int, list[OpLike]]:
    """Operations grouped by round, in recorded order."""
    rounds: dict[int, list[OpLike]] = defaultdict(list)
    for op in ops:
        rounds[op.round].append(op)
    return dict(rounds)


def race_of_round(
    ops: Sequence[OpLike], setup: int | None = None, race: int | None = None
) -> list[OpLike]:
    """The racing calls of one round (recorded as setup, then race, then cleanup).

    With ``setup`` and ``race`` (how many setup and racing calls the round's plan has) the split
    is exact. Otherwise: task 0's calls that returned before any other task's first call are
    setup, and those invoked after every other task's last response are cleanup; a one-task
    round counts every call as racing.
    """
    if setup is not None and race is not None:
        return list(ops[setup : setup + race])
    others = [op for op in ops if op.task != 0]
    if not others:
        return list(ops)
    first_call = min(op.call for op in others)
    ends = [op.ret for op in others]
    last_ret = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
    racing: list[OpLike] = []
    for op in ops:
        if op.task == 0:
            if op.ret is not None and op.ret < first_call:
                continue
            if last_ret is not None and op.call > last_ret:
                continue
        racing.append(op)
    return racing


def wins_per_task(race: Iterable[OpLike], tasks: int) -> tuple[int, ...]:
    """Successful racing mmaps per task (index = task)."""
    wins = [0] * tasks
    for op in race:
        if outcome_class(op) == WON and 0 <= op.task < tasks:
            wins[op.task] += 1
    return tuple(wins)


def latencies(race: Iterable[OpLike], clock: str = "ns") -> Latencies:
    """Latency (ret - call) of completed racing calls, by outcome class."""
    by: dict[str, list[int]] = {WON: [], EEXIST: [], OTHER: []}
    for op in race:
        cls = outcome_class(op)
        if cls is not None and op.ret is not None:
            by[cls].append(op.ret - op.call)
    return Latencies(tuple(by[WON]), tuple(by[EEXIST]), tuple(by[OTHER]), clock)


def estimated_lock_waits(race: Iterable[OpLike], clock: str = "ns") -> LockWaits:
    """Estimate lock waits as latency minus the fastest completed call of the same kind.

    The fastest call approximates the uncontended service time; the rest is mostly time
    queued behind other callers on the target's lock.
    """
    done = [op for op in race if op.ret is not None]
    fastest: dict[tuple[str, str | None], int] = {}
    for op in done:
        key = (op.op.kind, outcome_class(op))
        span = (op.ret or 0) - op.call
        fastest[key] = min(fastest.get(key, span), span)
    waits = tuple((op.ret or 0) - op.call - fastest[(op.op.kind, outcome_class(op))] for op in done)
    return LockWaits(waits, measured=False, clock=clock)


def round_timeline(ops: Sequence[OpLike], title: str, clock: str = "ns") -> Timeline:
    """A round's calls as a timeline (no linearization information)."""
    return Timeline(
        title,
        tuple(
            TimelineCall(op.task, describe(op), op.call, op.ret, outcome=outcome_class(op) or "")
            for op in ops
        ),
        clock,
    )


def counterexample_timeline(
    events: Sequence[Any],
    linearized: Sequence[int],
    stuck: Sequence[tuple[int, str]],
    title: str,
    clock: str = "ns",
    label: Any = None,
) -> Timeline:
    """A checker counterexample (events with task/input/output/call/ret) as a timeline.

    ``linearized`` indexes ``events`` in linearization order; ``stuck`` gives (index, reason)
    for the calls that could not come next. ``label(event) -> str`` names a call (default:
    the event's input and output).
    """
    order = {index: pos + 1 for pos, index in enumerate(linearized)}
    reasons = dict(stuck)
    calls = []
    for i, ev in enumerate(events):
        text = label(ev) if label is not None else f"{ev.input} → {ev.output}"
        calls.append(
            TimelineCall(
                task=ev.task,
                label=text,
                call=ev.call,
                ret=ev.ret,
                order=order.get(i),
                conflict=i in reasons,
                reason=reasons.get(i, ""),
            )
        )
    return Timeline(title, tuple(calls), clock)
