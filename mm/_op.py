"""One memory-management call as a value: what a task asks of a target."""

from __future__ import annotations

import attrs

from mm._names import format_flags, format_prot

KINDS: tuple[str, ...] = ("mmap", "munmap", "mprotect")


@attrs.frozen(cache_hash=True)
class Op:
    """An mmap(addr, length, prot, flags, fd, offset), munmap(addr, length) or mprotect call.

    Arguments are the raw unsigned values a caller passes; `flags`, `fd` and `offset` only mean
    something for mmap.
    """

    kind: str
    addr: int
    length: int
    prot: int = 0
    flags: int = 0
    fd: int = -1
    offset: int = 0

    @classmethod
    def mmap(
        cls, addr: int, length: int, prot: int, flags: int, *, fd: int = -1, offset: int = 0
    ) -> Op:
        return cls("mmap", addr, length, prot, flags, fd, offset)

    @classmethod
    def munmap(cls, addr: int, length: int) -> Op:
        return cls("munmap", addr, length)

    @classmethod
    def mprotect(cls, addr: int, length: int, prot: int) -> Op:
        return cls("mprotect", addr, length, prot)

    def __str__(self) -> str:
        if self.kind == "mmap":
            text = (
                f"mmap({self.addr:#x}, {self.length:#x}, {format_prot(self.prot)}, "
                f"{format_flags(self.flags)}"
            )
            if self.fd != -1 or self.offset:
                text += f", fd={self.fd}, off={self.offset:#x}"
            return text + ")"
        if self.kind == "munmap":
            return f"munmap({self.addr:#x}, {self.length:#x})"
        return f"mprotect({self.addr:#x}, {self.length:#x}, {format_prot(self.prot)})"
