"""The raw system calls through ctypes, and host probes built on them (Linux only).

No safety checks here: `mm.kernel.KernelSpace` is the fenced way in. Results use the raw
convention of `mm` (an address or 0, or -errno); errno is read per thread right after the call
(ctypes releases the GIL during it).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

from mm._names import MAP_ANONYMOUS, MAP_PRIVATE, PROT_NONE

U64 = (1 << 64) - 1
_MAP_FAILED = U64


class KernelUnavailable(RuntimeError):
    """The kernel binding was used on a system that is not Linux."""


# --- the raw calls ---------------------------------------------------------------------------

_libc: ctypes.CDLL | None = None
_libc_lock = threading.Lock()


def _lib() -> ctypes.CDLL:
    global _libc
    if not sys.platform.startswith("linux"):
        raise KernelUnavailable(f"the kernel target needs Linux (this system is {sys.platform})")
    with _libc_lock:
        if _libc is None:
            lib = ctypes.CDLL(None, use_errno=True)
            lib.mmap.argtypes = [
                ctypes.c_void_p,
                ctypes.c_size_t,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_int,
                ctypes.c_long,
            ]
            lib.mmap.restype = ctypes.c_void_p
            lib.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            lib.munmap.restype = ctypes.c_int
            lib.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            lib.mprotect.restype = ctypes.c_int
            _libc = lib
        return _libc


def _int32(value: int) -> int:
    """The C `int` a caller would pass for these bits (two's complement)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _long(value: int) -> int:
    value &= U64
    return value - (1 << 64) if value >= 1 << 63 else value


def raw_mmap(addr: int, length: int, prot: int, flags: int, fd: int = -1, offset: int = 0) -> int:
    """mmap(2) with no safety check: the address, or -errno. Use `KernelSpace` instead."""
    lib = _lib()
    result = lib.mmap(addr & U64, length & U64, _int32(prot), _int32(flags), fd, _long(offset))
    err = ctypes.get_errno()  # this thread's errno, read right after the call
    address = 0 if result is None else int(result)
    return -err if address == _MAP_FAILED else address


def raw_munmap(addr: int, length: int) -> int:
    """munmap(2) with no safety check: 0 or -errno."""
    lib = _lib()
    result = lib.munmap(addr & U64, length & U64)
    err = ctypes.get_errno()
    return -err if result == -1 else int(result)


def raw_mprotect(addr: int, length: int, prot: int) -> int:
    """mprotect(2) with no safety check: 0 or -errno."""
    lib = _lib()
    result = lib.mprotect(addr & U64, length & U64, _int32(prot))
    err = ctypes.get_errno()
    return -err if result == -1 else int(result)


def page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# --- host probes -----------------------------------------------------------------------------


def probe_mmap_min_addr() -> int | None:
    """The effective mmap_min_addr = max(vm.mmap_min_addr, CONFIG_LSM_MMAP_MIN_ADDR).

    A non-fixed one-page mapping hinted at 0x1000 has its hint raised to
    PAGE_ALIGN(mmap_min_addr) (rule 4) and lands exactly there when that page is free; anywhere
    else (a high address) means the page was taken and we cannot tell: None. Safe: a non-fixed
    mmap never replaces anything, and the page is unmapped at once.
    """
    page = page_size()
    got = raw_mmap(0x1000, page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS)
    if got < 0:
        return None
    raw_munmap(got, page)
    return got if got < 1 << 32 else None


# --- capabilities ----------------------------------------------------------------------------

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_cap_sys_rawio() -> None:
    """Drop CAP_SYS_RAWIO from the calling thread (effective, permitted, inheritable), for good.

    Affects this thread only (Linux capabilities are per thread), never any sysctl. Raises
    OSError when capget/capset fail.
    """
    lib = _lib()
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if lib.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    bit = ~(1 << 17) & 0xFFFFFFFF  # CAP_SYS_RAWIO
    data[0].effective &= bit
    data[0].permitted &= bit
    data[0].inheritable &= bit
    if lib.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
