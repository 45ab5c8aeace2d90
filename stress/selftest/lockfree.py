"""Self-test plug-ins: a page-dict address space written as a user would, with no yield point.

`nolock`: look the range up, then insert it, with no lock: two racing NOREPLACE probes of one
page can both win. It has no ``mm.yield_point`` at all, so only a scheduler that preempts the
plug-in's own lines can show that (``mmrace run --target stress.selftest.lockfree:nolock``).
`locked`: the same under a ``threading.Lock`` made in the constructor (linearizable).
`nolock_async` / `locked_async`: the async flavours (a ``trio.sleep(0)`` between the lookup and
the insertion, as a pager call would be; the lock is a ``trio.Lock``).

Only what the self-test workloads call is modelled (fixed mmap, munmap, mprotect, with the
usual EINVAL/EEXIST/ENOMEM answers); results use the raw convention (address or 0, -errno).
"""

from __future__ import annotations

import threading

import trio

EINVAL, EEXIST, ENOMEM = 22, 17, 12
MAP_FIXED, MAP_FIXED_NOREPLACE = 0x10, 0x100000
PAGE = 4096


class Space:
    """Pages -> prot; `mmap` looks the range up, then inserts it."""

    def __init__(self) -> None:
        self.pages: dict[int, int] = {}

    def _range(self, addr: int, length: int) -> range | None:
        if addr % PAGE or length <= 0:
            return None
        return range(addr, addr + -(-length // PAGE) * PAGE, PAGE)

    def lookup(self, addr: int, length: int, flags: int) -> int | range:
        if not flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            return -ENOMEM  # this toy only places fixed mappings
        pages = self._range(addr, length)
        if pages is None:
            return -EINVAL
        if flags & MAP_FIXED_NOREPLACE:
            for p in pages:
                if p in self.pages:
                    return -EEXIST
        return pages

    def insert(self, pages: range, prot: int) -> int:
        for p in pages:
            self.pages[p] = prot
        return pages.start

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        found = self.lookup(addr, length, flags)
        if isinstance(found, int):
            return found
        return self.insert(found, prot)

    def munmap(self, addr: int, length: int) -> int:
        pages = self._range(addr, length)
        if pages is None:
            return -EINVAL
        for p in pages:
            self.pages.pop(p, None)
        return 0

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        if addr % PAGE:
            return -EINVAL
        if length == 0:
            return 0
        pages = self._range(addr, length)
        if pages is None:
            return -EINVAL
        for p in pages:  # Linux changes the prefix before the first hole
            if p not in self.pages:
                return -ENOMEM
            self.pages[p] = prot
        return 0


class Locked(Space):
    """One threading.Lock around each call."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        with self.lock:
            return Space.mmap(self, addr, length, prot, flags)

    def munmap(self, addr: int, length: int) -> int:
        with self.lock:
            return Space.munmap(self, addr, length)

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        with self.lock:
            return Space.mprotect(self, addr, length, prot)


class NoLockAsync:
    """Async: look up, ask a 'pager' for frames (a trio checkpoint), insert."""

    def __init__(self) -> None:
        self.space = Space()

    async def backing(self, pages: range) -> None:
        await trio.sleep(0)

    async def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        found = self.space.lookup(addr, length, flags)
        if isinstance(found, int):
            return found
        await self.backing(found)
        return self.space.insert(found, prot)

    async def munmap(self, addr: int, length: int) -> int:
        return self.space.munmap(addr, length)

    async def mprotect(self, addr: int, length: int, prot: int) -> int:
        return self.space.mprotect(addr, length, prot)


class LockedAsync(NoLockAsync):
    """A trio.Lock around each call."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = trio.Lock()

    async def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        async with self.lock:
            return await NoLockAsync.mmap(self, addr, length, prot, flags)

    async def munmap(self, addr: int, length: int) -> int:
        async with self.lock:
            return self.space.munmap(addr, length)

    async def mprotect(self, addr: int, length: int, prot: int) -> int:
        async with self.lock:
            return self.space.mprotect(addr, length, prot)


def nolock() -> Space:
    return Space()


def locked() -> Locked:
    return Locked()


def nolock_async() -> NoLockAsync:
    return NoLockAsync()


def locked_async() -> LockedAsync:
    return LockedAsync()
