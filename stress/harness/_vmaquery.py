"""Is anything mapped in [lo, hi)? The kernel target's interference check, made cheap.

Preferred: one PROCMAP_QUERY ioctl on /proc/self/maps (Linux 6.11+): "the mapping covering
`lo`, or the next one after it" answers the question with no side effect (about 1.5 µs from
Python). Otherwise: one MAP_FIXED_NOREPLACE PROT_NONE mapping over the range, removed at once
(EEXIST = someone is there), which creates and destroys a mapping (10-25 µs on a 2-core VM).

`Occupancy.open(arena)` self-tests the ioctl inside the arena it is given (a page mapped
there must be reported exactly, and be gone after munmap) and falls back to the probe when
the ioctl is missing or answers wrongly, e.g. under an emulator or a sandbox that fakes
/proc/self/maps; any later ioctl failure also switches to the probe for good.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Iterator

import mm
from mm import kernel as k

# struct procmap_query (include/uapi/linux/fs.h): 9 u64, 4 u32, 2 u64 = 104 bytes
_QUERY = struct.Struct("=9Q4I2Q")
PROCMAP_QUERY = (3 << 30) | (_QUERY.size << 16) | (ord("f") << 8) | 17  # _IOWR('f', 17, ...)
_COVERING_OR_NEXT_VMA = 0x10
_HEAD = struct.Struct("=3Q")  # size, query_flags, query_addr
_SPAN = struct.Struct("=2Q")  # vma_start, vma_end (offset 24)
_FLAGS = struct.Struct("=Q")  # vma_flags (offset 40): PROCMAP_QUERY_VMA_READABLE 1, WRITABLE 2, ...
_PROT_BITS = ((1, mm.PROT_READ), (2, mm.PROT_WRITE), (4, mm.PROT_EXEC))

# The probe mapping: shared anonymous never merges with the run's private neighbours.
PROBE_FLAGS = mm.MAP_SHARED | mm.MAP_ANONYMOUS | mm.MAP_FIXED_NOREPLACE | 0x4000  # NORESERVE


class Occupancy:
    """`busy(lo, hi)`: is any page of [lo, hi) mapped? (`method` says how it is asked.)"""

    def __init__(self) -> None:
        self._fd: int | None = None
        self._buf = bytearray(_QUERY.size)
        self.method = "probe"

    @classmethod
    def open(cls, arena: k.Arena) -> Occupancy:
        """Use the ioctl if it answers correctly about a page mapped in `arena` (free)."""
        self = cls()
        try:
            self._fd = os.open("/proc/self/maps", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return self
        page = k.page_size()
        lo = arena.base
        got = k.raw_mmap(lo, page, mm.PROT_NONE, PROBE_FLAGS)
        if got != lo:
            if got >= 0:  # placed elsewhere (no NOREPLACE): ours to remove
                k.raw_munmap(got, page)
            self.close()
            return self
        try:
            mapped = self._first(lo)
        except OSError:  # e.g. ENOTTY (older kernel), ENOSYS (qemu-user)
            mapped = None
        finally:
            k.raw_munmap(lo, page)
        try:
            gone = self._first(lo) if mapped == (lo, lo + page) else None
        except OSError:
            mapped = None
        if mapped == (lo, lo + page) and (gone is None or gone[0] >= arena.end):
            self.method = "procmap-query"
        else:
            self.close()
        return self

    def _first(self, addr: int) -> tuple[int, int] | None:
        """The mapping covering `addr` or the next one (None: nothing after); OSError when the
        ioctl is not there."""
        if not self._query(addr, _COVERING_OR_NEXT_VMA):
            return None
        start, end = _SPAN.unpack_from(self._buf, 24)
        return start, end

    def _query(self, addr: int, flags: int) -> bool:
        """One PROCMAP_QUERY for `addr` into the buffer: False when no mapping answers."""
        assert self._fd is not None
        _HEAD.pack_into(self._buf, 0, _QUERY.size, flags, addr)
        try:
            fcntl.ioctl(self._fd, PROCMAP_QUERY, self._buf, True)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        return True

    def prot_at(self, addr: int) -> int | None:
        """The PROT_* bits of the mapping covering `addr`, None when nothing covers it. Only
        with the ioctl (`method == "procmap-query"`); raises OSError if it fails."""
        if self._fd is None:
            raise OSError(errno.ENOTTY, "PROCMAP_QUERY is not in use")
        if not self._query(addr, 0):  # no flag: the covering mapping only
            return None
        (flags,) = _FLAGS.unpack_from(self._buf, 40)
        return sum(prot for bit, prot in _PROT_BITS if flags & bit)

    def mappings(self, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        """The mappings meeting [lo, hi), in address order, one ioctl each (and one more to
        see that nothing follows). Only with the ioctl (`method == "procmap-query"`);
        raises OSError if it fails."""
        if self._fd is None:
            raise OSError(errno.ENOTTY, "PROCMAP_QUERY is not in use")
        addr = lo
        while addr < hi:
            found = self._first(addr)
            if found is None or found[0] >= hi:
                return
            yield found
            addr = found[1]

    def busy(self, lo: int, hi: int) -> bool:
        """True when something is mapped in [lo, hi) (or the probe could not tell)."""
        if self._fd is not None:
            try:
                found = self._first(lo)
            except OSError:
                self.close()  # from now on: the probe
            else:
                return found is not None and found[0] < hi
        got = k.raw_mmap(lo, hi - lo, mm.PROT_NONE, PROBE_FLAGS)
        if got < 0:
            return True  # EEXIST, or the probe was refused: look
        k.raw_munmap(got, hi - lo)
        return got != lo  # an old kernel's hint semantics: the probe cannot be trusted

    def close(self) -> None:
        fd, self._fd = self._fd, None
        self.method = "probe"
        if fd is not None:
            os.close(fd)
