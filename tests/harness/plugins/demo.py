"""Plug-ins that misbehave or use every blocking primitive, for the controlled scheduler's tests.

No ``mm.yield_point`` anywhere: the scheduler preempts their own lines. Built on the self-test's
page-dict address space (`stress.selftest.lockfree.Space`, which is not traced: only this file
is).
"""

from __future__ import annotations

import functools
import os
import threading
import time

import trio

from stress.selftest.lockfree import EEXIST, Space


class Local(Space):
    """The lock-free lookup-then-insert, written in this (traced) file."""

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        found = self.lookup(addr, length, flags)
        if isinstance(found, int):
            return found
        for p in found:
            self.pages[p] = prot
        return found.start


class CondVar(Local):
    """A hand-made mutex: a busy flag guarded by a Condition, behind an Event and a Semaphore."""

    def __init__(self) -> None:
        super().__init__()
        self.cond = threading.Condition()
        self.busy = False
        self.ready = threading.Event()
        self.ready.set()
        self.slots = threading.Semaphore(2)

    def _enter(self) -> None:
        self.ready.wait()
        with self.cond:
            while self.busy:
                self.cond.wait()
            self.busy = True

    def _leave(self) -> None:
        with self.cond:
            self.busy = False
            self.cond.notify()

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        with self.slots:
            self._enter()
            try:
                return Local.mmap(self, addr, length, prot, flags)
            finally:
                self._leave()

    def munmap(self, addr: int, length: int) -> int:
        self._enter()
        try:
            return Space.munmap(self, addr, length)
        finally:
            self._leave()


class ABBA(Local):
    """Two locks taken in opposite orders on alternate calls: can deadlock."""

    def __init__(self) -> None:
        super().__init__()
        self.a = threading.Lock()
        self.b = threading.RLock()
        self.calls = 0

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        self.calls += 1
        first, second = (self.a, self.b) if self.calls % 2 else (self.b, self.a)
        # two lines: `with first, second:` would take both between two preemption points
        with first:  # noqa: SIM117
            with second:
                return Local.mmap(self, addr, length, prot, flags)


class Sleepy(Local):
    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        time.sleep(30)  # in C: no preemption point for 30 s
        return Local.mmap(self, addr, length, prot, flags)


class Exits(Local):
    calls = 0

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        Exits.calls += 1
        if Exits.calls >= 3:  # (not == 3: another task may increment in between)
            os._exit(0)
        return Local.mmap(self, addr, length, prot, flags)


class CExits(Local):
    """Ends the process from C (libc's _exit through ctypes): no Python-level guard sees it."""

    calls = 0

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        CExits.calls += 1
        if CExits.calls >= 3:
            import ctypes

            ctypes.CDLL(None)._exit(0)
        return Local.mmap(self, addr, length, prot, flags)


class Spinner(Local):
    flag = False

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        while not self.flag:
            pass
        return Local.mmap(self, addr, length, prot, flags)


class CExt:
    """Stands in for a C or Rust extension: the methods are not Python code of this file."""

    def __init__(self) -> None:
        space = Space()
        self.mmap = functools.partial(Space.mmap, space)
        self.munmap = functools.partial(Space.munmap, space)
        self.mprotect = functools.partial(Space.mprotect, space)


class ForeignLock(Local):
    def __init__(self, lock: threading.Lock) -> None:
        super().__init__()
        self.lock = lock

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        with self.lock:
            return Local.mmap(self, addr, length, prot, flags)

    def munmap(self, addr: int, length: int) -> int:
        with self.lock:
            return Space.munmap(self, addr, length)


class OneLiner(Space):
    """The lookup and the insertion on one line: line-level preemption cannot split it."""

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        won = addr not in self.pages and self.pages.update({addr: prot}) is None
        return addr if won else -EEXIST


class NoLockAsync:
    """Async lookup, checkpoint, insert (no lock), over a page dict."""

    def __init__(self) -> None:
        self.space = Space()

    async def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        found = self.space.lookup(addr, length, flags)
        if isinstance(found, int):
            return found
        await trio.sleep(0)
        for p in found:
            self.space.pages[p] = prot
        return found.start

    async def munmap(self, addr: int, length: int) -> int:
        return self.space.munmap(addr, length)

    async def mprotect(self, addr: int, length: int, prot: int) -> int:
        return self.space.mprotect(addr, length, prot)


class ABBAAsync(NoLockAsync):
    def __init__(self) -> None:
        super().__init__()
        self.a = trio.Lock()
        self.b = trio.Lock()
        self.calls = 0

    async def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        self.calls += 1
        first, second = (self.a, self.b) if self.calls % 2 else (self.b, self.a)
        async with first, second:  # every acquire is a decision point: both may block
            return await NoLockAsync.mmap(self, addr, length, prot, flags)


class SemaphoreAsync(NoLockAsync):
    """A trio.Semaphore(1) as the mutex, an Event at the door: correct."""

    def __init__(self) -> None:
        super().__init__()
        self.sem = trio.Semaphore(1)
        self.door = trio.Event()
        self.door.set()

    async def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        await self.door.wait()
        async with self.sem:
            return await NoLockAsync.mmap(self, addr, length, prot, flags)


class SleepyAsync(NoLockAsync):
    async def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        time.sleep(30)  # a blocking call in async code
        return await NoLockAsync.mmap(self, addr, length, prot, flags)


class ExitsAsync(NoLockAsync):
    calls = 0

    async def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        ExitsAsync.calls += 1
        if ExitsAsync.calls >= 3:
            os._exit(0)
        return await NoLockAsync.mmap(self, addr, length, prot, flags)


class ForeignTrioLock(NoLockAsync):
    """A real trio.Lock made outside plug-in code (as a library object would be)."""

    def __init__(self, lock: trio.Lock) -> None:
        super().__init__()
        self.lock = lock

    async def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        async with self.lock:
            return await NoLockAsync.mmap(self, addr, length, prot, flags)


def condvar() -> CondVar:
    return CondVar()


def abba() -> ABBA:
    return ABBA()


def sleepy() -> Sleepy:
    return Sleepy()


def exits() -> Exits:
    Exits.calls = 0
    return Exits()


def c_exits() -> CExits:
    CExits.calls = 0
    return CExits()


def spinner() -> Spinner:
    return Spinner()


def cext() -> CExt:
    return CExt()


def oneliner() -> OneLiner:
    return OneLiner()


def foreign_lock() -> ForeignLock:
    """A threading.Lock made by a library outside the plug-in, handed over (one reference)."""
    import threading as t

    lock = t.Lock.__wrapped__() if hasattr(t.Lock, "__wrapped__") else t.Lock()  # a real one
    return ForeignLock(lock)


def foreign_lock_shared() -> ForeignLock:
    """The same, but the library keeps a second reference: it cannot be swapped safely."""
    import helperlib

    return ForeignLock(helperlib.make_shared_lock())


def nolock_async() -> NoLockAsync:
    return NoLockAsync()


def abba_async() -> ABBAAsync:
    return ABBAAsync()


def semaphore_async() -> SemaphoreAsync:
    return SemaphoreAsync()


def sleepy_async() -> SleepyAsync:
    return SleepyAsync()


def exits_async() -> ExitsAsync:
    ExitsAsync.calls = 0
    return ExitsAsync()


def foreign_trio_lock() -> ForeignTrioLock:
    import helperlib

    return ForeignTrioLock(helperlib.make_trio_lock())
