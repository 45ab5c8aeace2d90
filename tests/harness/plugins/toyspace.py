"""Example mmrace plug-ins: a toy address space that tracks pages in a dict.

Race it with ``mmrace run same-page --target toyspace:correct`` (this directory on sys.path,
or the current directory). Four factories:

- ``correct`` / ``correct_async``: the check and the insertion happen under one lock;
- ``racy`` / ``racy_async``: the check and the insertion are separate steps with a window
  between them (marked with ``mm.yield_point``), so two racing probes can both "win" — the
  bug MAP_FIXED_NOREPLACE exists to prevent, which mmrace must catch.

Only the calls the example workloads make are modelled (fixed mmap, munmap, mprotect, with the
usual EINVAL/EEXIST/ENOMEM answers); results use the raw convention (address or 0, -errno).
"""

from __future__ import annotations

import threading

import trio

import mm

EINVAL, EEXIST, ENOMEM = 22, 17, 12


class ToySpace:
    """Pages -> prot, with the checks of mmap/munmap/mprotect that the examples need."""

    def __init__(self, params: mm.Params) -> None:
        self.page = params.page_size
        self.pages: dict[int, int] = {}

    def _range(self, addr: int, length: int) -> range | None:
        if addr % self.page or length <= 0:
            return None
        end = addr + -(-length // self.page) * self.page
        return range(addr, end, self.page)

    def check_mmap(self, addr: int, length: int, flags: int) -> int | range:
        if not flags & mm.MAP_FIXED_NOREPLACE and not flags & mm.MAP_FIXED:
            return -ENOMEM  # this toy only places fixed mappings
        pages = self._range(addr, length)
        if pages is None:
            return -EINVAL
        if flags & mm.MAP_FIXED_NOREPLACE and any(p in self.pages for p in pages):
            return -EEXIST
        return pages

    def insert(self, pages: range, prot: int) -> int:
        for p in pages:
            self.pages[p] = prot
        return pages.start

    def unmap(self, addr: int, length: int) -> int:
        pages = self._range(addr, length)
        if pages is None:
            return -EINVAL
        for p in pages:
            self.pages.pop(p, None)
        return 0

    def protect(self, addr: int, length: int, prot: int) -> int:
        if addr % self.page:
            return -EINVAL
        if length == 0:
            return 0
        pages = self._range(addr, length)
        assert pages is not None
        for p in pages:  # Linux changes the prefix before the first hole
            if p not in self.pages:
                return -ENOMEM
            self.pages[p] = prot
        return 0


class Correct(ToySpace):
    """Sync, one lock around each call: linearizable."""

    def __init__(self, params: mm.Params) -> None:
        super().__init__(params)
        self.lock = threading.Lock()

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        mm.yield_point("enter")  # a window before the lock is harmless
        with self.lock:
            checked = self.check_mmap(addr, length, flags)
            if isinstance(checked, int):
                return checked
            mm.yield_point("mmap:checked")  # others only queue on the lock
            return self.insert(checked, prot)

    def munmap(self, addr: int, length: int) -> int:
        with self.lock:
            return self.unmap(addr, length)

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        with self.lock:
            return self.protect(addr, length, prot)


class Racy(ToySpace):
    """Sync, no lock: check, window, insert. Two probes for one page can both succeed."""

    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        checked = self.check_mmap(addr, length, flags)
        if isinstance(checked, int):
            return checked
        mm.yield_point("mmap:checked")  # another thread may insert right here
        return self.insert(checked, prot)

    def munmap(self, addr: int, length: int) -> int:
        return self.unmap(addr, length)

    def mprotect(self, addr: int, length: int, prot: int) -> int:
        return self.protect(addr, length, prot)


class CorrectAsync(ToySpace):
    """Async, a trio.Lock around each call."""

    def __init__(self, params: mm.Params) -> None:
        super().__init__(params)
        self.lock = trio.Lock()

    async def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        async with self.lock:
            checked = self.check_mmap(addr, length, flags)
            if isinstance(checked, int):
                return checked
            await mm.ayield_point("mmap:checked")
            return self.insert(checked, prot)

    async def munmap(self, addr: int, length: int) -> int:
        async with self.lock:
            return self.unmap(addr, length)

    async def mprotect(self, addr: int, length: int, prot: int) -> int:
        async with self.lock:
            return self.protect(addr, length, prot)


class RacyAsync(ToySpace):
    """Async, no lock: the await between check and insert lets other tasks in."""

    async def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        checked = self.check_mmap(addr, length, flags)
        if isinstance(checked, int):
            return checked
        await mm.ayield_point("mmap:checked")
        return self.insert(checked, prot)

    async def munmap(self, addr: int, length: int) -> int:
        return self.unmap(addr, length)

    async def mprotect(self, addr: int, length: int, prot: int) -> int:
        return self.protect(addr, length, prot)


def correct(params: mm.Params) -> Correct:
    return Correct(params)


def racy(params: mm.Params) -> Racy:
    return Racy(params)


def correct_async(params: mm.Params) -> CorrectAsync:
    return CorrectAsync(params)


def racy_async() -> RacyAsync:  # a factory may also take no argument
    return RacyAsync(mm.Params.reference())


# --- broken plug-ins, for the error messages ------------------------------------------------


class _NoMprotect:
    def mmap(self, addr: int, length: int, prot: int, flags: int) -> int:
        return -ENOMEM

    def munmap(self, addr: int, length: int) -> int:
        return 0


def lacks_mprotect() -> _NoMprotect:
    return _NoMprotect()


class _Mixed(_NoMprotect):
    async def mprotect(self, addr: int, length: int, prot: int) -> int:
        return 0


def mixed() -> _Mixed:
    return _Mixed()


def needs_two(a: int, b: int) -> Correct:
    return Correct(mm.Params.reference())


def explodes(params: mm.Params) -> Correct:
    raise RuntimeError("no licence")


not_callable = 42
