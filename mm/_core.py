"""The lock-protected cores: the concurrent objects that tasks race on.

Both flavours run the same spec code (`plan`, then `commit` change by change); the lock covers
the whole check-and-insert, so a correct core is linearizable whatever the hooks do. The yield
points mark where a real implementation has a window; the bug variants (`mm.variants`) subclass
these cores and drop the lock exactly there.
"""

from __future__ import annotations

import threading
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any

import trio

from mm import _yield
from mm._op import Op
from mm._params import Params
from mm._spec import Change, Plan, commit, plan
from mm._state import State

_STEP_POINT = {"mmap": _yield.MMAP_CHECKED, "munmap": _yield.MUNMAP_STEP}


def step_point(op: Op) -> str:
    """The yield point between two changes of `op`."""
    return _STEP_POINT.get(op.kind, _yield.MPROTECT_STEP)


class _CoreBase:
    """State and bookkeeping shared by the two flavours."""

    def __init__(self, params: Params, state: State | None = None) -> None:
        self.params = params
        self.state = state if state is not None else State.empty()
        self.calls = 0

    def decide(self, op: Op) -> Plan:
        """The checks: a pure function of the current state."""
        self.calls += 1
        return plan(self.state, self.params, op)

    def publish(self, change: Change) -> None:
        """One change made visible to every other task."""
        self.state = commit(self.state, (change,))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state}>"


class ThreadCore(_CoreBase):
    """The address space shared by OS threads, guarded by a threading.Lock.

    `apply` blocks while another thread holds the lock; the sync yield hook runs with the lock
    held (on a correct core a window is only a chance for others to queue up).
    """

    def __init__(
        self,
        params: Params,
        state: State | None = None,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        super().__init__(params, state)
        self.lock = lock if lock is not None else threading.Lock()

    def apply(self, op: Op) -> int:
        _yield.yield_point(_yield.ENTER)
        with self.lock:
            decided = self.decide(op)
            point = step_point(op)
            if op.kind == "mmap":
                _yield.yield_point(point)
            for i, change in enumerate(decided.changes):
                if i:
                    _yield.yield_point(point)
                self.publish(change)
            return decided.result

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        return self.apply(Op.mmap(addr, length, prot, flags))

    def munmap(self, addr: int, length: int) -> int:
        return self.apply(Op.munmap(addr, length))

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        return self.apply(Op.mprotect(addr, length, prot))


class TrioCore(_CoreBase):
    """The address space shared by trio tasks, guarded by a trio.Lock (or a scheduler's lock).

    `apply` yields to trio where the lock blocks and wherever the installed async hook yields;
    with no hook and no contention it never yields. Cancelled while waiting for the lock, the
    call has no effect; once the lock is held, the hook's cancellation may leave a multi-part
    munmap half done, which is exactly what a real kernel never does, so hooks used with the
    correct core should not be cancelled mid-call.
    """

    def __init__(
        self,
        params: Params,
        state: State | None = None,
        lock: AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        super().__init__(params, state)
        self.lock = lock if lock is not None else trio.Lock()

    async def apply(self, op: Op) -> int:
        await _yield.ayield_point(_yield.ENTER)
        async with self.lock:
            decided = self.decide(op)
            point = step_point(op)
            if op.kind == "mmap":
                await _yield.ayield_point(point)
            for i, change in enumerate(decided.changes):
                if i:
                    await _yield.ayield_point(point)
                self.publish(change)
            return decided.result

    async def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        return await self.apply(Op.mmap(addr, length, prot, flags))

    async def munmap(self, addr: int, length: int) -> int:
        return await self.apply(Op.munmap(addr, length))

    async def mprotect(self, addr: int, length: int, prot: int) -> int:
        return await self.apply(Op.mprotect(addr, length, prot))
