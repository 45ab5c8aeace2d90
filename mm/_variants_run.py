"""One call of a core, written once as a script of steps, run by a sync or an async driver.

A script is a generator: it does the pure work itself (`core.decide`, `core.publish`) and yields
the steps that differ between the two flavours: `ACQUIRE` / `RELEASE` the core's lock, and
`Yield(name)`, a yield point. `run_sync` drives it on a `ThreadCore` (threading lock,
`mm.yield_point`), `run_async` on a `TrioCore` (trio or scheduler lock, `mm.ayield_point`), so a
bug variant's transition code is shared by both flavours. `correct` is the script of the
built-in cores (mm/_core.py), step for step; the concurrency bugs are edits of it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from mm import _yield
from mm._core import step_point
from mm._names import PROT_EXEC, PROT_READ, PROT_WRITE
from mm._op import Op
from mm._spec import ENOMEM, Change, Plan, plan

if TYPE_CHECKING:
    from mm._params import Params
    from mm._state import State


@attrs.frozen
class Yield:
    """A yield point named `name` (see mm/_yield.py)."""

    name: str


class _Lock:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ACQUIRE = _Lock("ACQUIRE")
RELEASE = _Lock("RELEASE")
Step = Yield | _Lock
Script = Generator[Step, None, int]

# The variants' own yield points (hooks accept any name).
MMAP_ACCOUNT = "mmap:account"  # rollback-window: between publishing and the accounting step
MMAP_PROTECT = "mmap:protect"  # two-phase-protect: between publishing and narrowing the mapping
_RW = PROT_READ | PROT_WRITE


class CoreLike(Protocol):
    """What a script needs from a core: its state, its checks and its publication."""

    params: Params
    state: State
    scratch: dict[str, int]

    def decide(self, op: Op) -> Plan: ...

    def publish(self, change: Change) -> None: ...


ScriptFn = Callable[[CoreLike, Op], Script]


def run_sync(lock: Any, script: Script) -> int:
    """Drive `script` on a threading-style lock (context manager) with sync yield points."""
    held = False
    try:
        step = next(script)
        while True:
            if step is ACQUIRE:
                lock.__enter__()
                held = True
            elif step is RELEASE:
                held = False
                lock.__exit__(None, None, None)
            else:
                assert isinstance(step, Yield)
                _yield.yield_point(step.name)
            step = script.send(None)
    except StopIteration as stop:
        result: int = stop.value
        return result
    finally:
        script.close()
        if held:
            lock.__exit__(None, None, None)


async def run_async(lock: Any, script: Script) -> int:
    """Drive `script` on an async lock (trio.Lock, SchedLock) with async yield points."""
    held = False
    try:
        step = next(script)
        while True:
            if step is ACQUIRE:
                await lock.__aenter__()
                held = True
            elif step is RELEASE:
                held = False
                await lock.__aexit__(None, None, None)
            else:
                assert isinstance(step, Yield)
                await _yield.ayield_point(step.name)
            step = script.send(None)
    except StopIteration as stop:
        result: int = stop.value
        return result
    finally:
        script.close()
        if held:
            await lock.__aexit__(None, None, None)


# --- the scripts --------------------------------------------------------------------------


def correct(core: CoreLike, op: Op) -> Script:
    """The built-in cores' call: checks and every change in one critical section."""
    yield Yield(_yield.ENTER)
    yield ACQUIRE
    decided = core.decide(op)
    point = step_point(op)
    if op.kind == "mmap":
        yield Yield(point)
    for i, change in enumerate(decided.changes):
        if i:
            yield Yield(point)
        core.publish(change)
    yield RELEASE
    return decided.result


def check_then_act(core: CoreLike, op: Op) -> Script:
    """mmap: the lock is dropped after the checks and re-taken to insert what was decided on
    the (now stale) state; the other calls are correct."""
    if op.kind != "mmap":
        return (yield from correct(core, op))
    yield Yield(_yield.ENTER)
    yield ACQUIRE
    decided = core.decide(op)
    yield RELEASE
    yield Yield(_yield.MMAP_CHECKED)
    yield ACQUIRE
    for change in decided.changes:
        core.publish(change)
    yield RELEASE
    return decided.result


def munmap_nonatomic(core: CoreLike, op: Op) -> Script:
    """munmap: the lock is dropped between removing two parts of the range (each part as
    decided up front); the other calls are correct."""
    if op.kind != "munmap":
        return (yield from correct(core, op))
    yield Yield(_yield.ENTER)
    yield ACQUIRE
    decided = core.decide(op)
    for i, change in enumerate(decided.changes):
        if i:
            yield RELEASE
            yield Yield(_yield.MUNMAP_STEP)
            yield ACQUIRE
        core.publish(change)
    yield RELEASE
    return decided.result


ACCOUNT_SEQ = "account_seq"


def rollback_window(core: CoreLike, op: Op) -> Script:
    """mmap with optimistic accounting: the mapping is published, the lock dropped, then the
    charge is committed only if no other call entered the core meanwhile (a sequence number
    every call bumps); otherwise the call backs out (the old pages restored) and fails with
    ENOMEM. Whoever looked at the range in the window saw it taken, so a round can end with
    the range free, no winner, and the losers holding EEXIST."""
    yield Yield(_yield.ENTER)
    yield ACQUIRE
    core.scratch[ACCOUNT_SEQ] = seen = core.scratch.get(ACCOUNT_SEQ, 0) + 1
    decided = core.decide(op)
    if op.kind != "mmap" or decided.result < 0 or not decided.changes:
        point = step_point(op)
        for i, change in enumerate(decided.changes):
            if i:
                yield Yield(point)
            core.publish(change)
        yield RELEASE
        return decided.result
    (change,) = decided.changes
    old = core.state.overlapping(change.start, change.end)
    yield Yield(_yield.MMAP_CHECKED)
    core.publish(change)
    yield RELEASE
    yield Yield(MMAP_ACCOUNT)
    if core.scratch.get(ACCOUNT_SEQ, 0) == seen:
        return decided.result
    yield ACQUIRE
    core.publish(Change(change.start, change.end, None))
    for m in old:
        lo, hi = max(m.start, change.start), min(m.end, change.end)
        core.publish(Change(lo, hi, m.with_range(lo, hi)))
    yield RELEASE
    return -ENOMEM


def two_phase_protect(core: CoreLike, op: Op) -> Script:
    """mmap with any protection but READ|WRITE: the mapping is published READ|WRITE under the
    lock; the lock is dropped; under a second acquisition the range is narrowed to the
    requested protection by an mprotect of whatever the range holds by then, and that
    mprotect's failure (ENOMEM: the range was unmapped meanwhile) is the call's result. The
    other calls, and READ|WRITE mappings, are correct."""
    if op.kind != "mmap":
        return (yield from correct(core, op))
    yield Yield(_yield.ENTER)
    yield ACQUIRE
    decided = core.decide(op)
    wanted = op.prot & (PROT_READ | PROT_WRITE | PROT_EXEC)
    yield Yield(_yield.MMAP_CHECKED)
    if decided.result < 0 or wanted == _RW:
        for change in decided.changes:
            core.publish(change)
        yield RELEASE
        return decided.result
    (change,) = decided.changes
    assert change.mapping is not None
    core.publish(attrs.evolve(change, mapping=attrs.evolve(change.mapping, prot=_RW)))
    yield RELEASE
    yield Yield(MMAP_PROTECT)
    yield ACQUIRE
    narrow = Op.mprotect(change.start, change.end - change.start, wanted)
    narrowed = plan(core.state, core.params, narrow)
    for step in narrowed.changes:
        core.publish(step)
    yield RELEASE
    return decided.result if narrowed.result == 0 else narrowed.result
