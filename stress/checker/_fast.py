"""The fast scan of a history file: read, cut and freed of repeats in C, judged in Python.

A long run repeats a few kinds of round: the same calls moved over the arena, won by one task
or another. Reading every line, cutting and judging each segment in Python costs several
microseconds a call. `scan_file` hands the file to `native/scan.c`, which reads the lines of
the strict form our writer uses, cuts them at the same clean cuts as `StreamCheck` (the rule of
`_mm_partition.time_segments`, at the same candidate points), and gives each complete segment
a key: its calls moved by whole pages to its lowest page (`_mm_shift`: a move keeps the
verdict), its tasks numbered in order of appearance, and its real-time order (which call
returned before which call was invoked; only for segments where each task's calls follow one
another in real time, so that program order is part of it). Segments with one key are the
same history up to a move and the names of tasks, so they are linearizable alike.

Every segment whose key is not yet proved goes to `StreamCheck` (the Python checker, exactly as
the stream would check it), in batches; when a batch is all linearizable its keys are
remembered, and a later segment with one of them is counted as linearizable without being
judged again. Only an OK of the Python checker ever proves a key, so nothing here can make a
verdict OK that the checker would not give, and every violation and counterexample comes from
the checker on the calls of the history.

The scan reads only what it fully understands. Any other line (a mistake, non-ASCII text, a
float, a value beyond 2^63, a line after the trailer, a torn last line) raises `ScanUnsure`,
and the caller reads the whole file again with the Python reader, which accepts what it should
and names every problem; a call before a cut already taken raises `OutOfOrder`, as the stream
does. No C compiler: `NativeUnavailable` (the caller reads with Python too).
"""

from __future__ import annotations

import ctypes
import os
from array import array
from pathlib import Path
from typing import Any

import attrs

import mm
from stress.cbuild import NativeUnavailable, compile_cached
from stress.checker._stream import BATCH_EVENTS, CUT_EVENTS, OutOfOrder, StreamCheck
from stress.checker._types import Event

SOURCE = Path(__file__).resolve().parent / "native" / "scan.c"
ABI = 1
MORE, JUDGE, FALLBACK, OUT_OF_ORDER = 0, 1, 2, 3
FIELDS = 13  # a queued call: task, round, kind, addr, length, prot, flags, fd, offset, call,
# has_ret, ret, result
KINDS = ("mmap", "munmap", "mprotect")
CHUNK = 8 << 20  # bytes read at a time
KEY_BYTES = 64 << 20  # the keys remembered at most (then forgotten, and learned again)
DISABLE_ENV = "MMRACE_FAST_SCAN"  # "0": never scan in C (the Python reader reads every file)
_library: ctypes.CDLL | None = None
_OPS = 1 << 16  # distinct calls whose `Op` is shared at a time


class ScanUnsure(Exception):
    """The scan met a line outside its strict form (the message says which): read the file
    with the Python reader instead."""


def enabled() -> bool:
    return os.environ.get(DISABLE_ENV, "1") != "0"


def library() -> ctypes.CDLL:
    """The scan, built (`stress.cbuild`) and loaded once per process."""
    global _library
    if _library is None:
        flags = ["-O2", "-std=gnu11", "-Wall", "-fPIC", "-shared"]
        path = compile_cached(SOURCE, "libmmrace-scan.so", flags, what="fast scan")
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise NativeUnavailable(f"cannot load {path}: {exc}") from None
        if lib.mms_abi() != ABI:
            raise NativeUnavailable(f"{path}: ABI {lib.mms_abi()}, expected {ABI}")
        i64, ptr = ctypes.c_int64, ctypes.c_void_p
        lib.mms_new.restype = ptr
        lib.mms_new.argtypes = [i64] * 8
        lib.mms_free.argtypes = [ptr]
        lib.mms_feed.restype = ctypes.c_int
        lib.mms_feed.argtypes = [ptr, ptr, i64, ctypes.c_int, ctypes.POINTER(i64)]
        lib.mms_finish.restype = i64
        lib.mms_finish.argtypes = [ptr, ctypes.c_int]
        lib.mms_queue.restype = i64
        out = ctypes.POINTER(ptr)
        lib.mms_queue.argtypes = [ptr, out, out, ctypes.POINTER(i64)]
        lib.mms_settle.restype = ctypes.c_int
        lib.mms_settle.argtypes = [ptr, ctypes.c_int]
        lib.mms_counts.argtypes = [ptr, ctypes.POINTER(i64)]
        lib.mms_why.restype = ctypes.c_char_p
        lib.mms_why.argtypes = [ptr]
        lib.mms_trailer.restype = ctypes.c_char_p
        lib.mms_trailer.argtypes = [ptr]
        _library = lib
    return _library


@attrs.frozen
class Scanned:
    """What the scan read besides the check (in ``stream``): round records, the trailer line
    (None: none was read), and the segments counted as repeats of a judged one."""

    stream: StreamCheck
    rounds: int
    trailer: str | None
    repeated: int
    repeated_calls: int


def header_length(path: Path) -> int:
    """The bytes of the file's first line, its newline included."""
    with path.open("rb") as f:
        first = f.readline()
    return len(first)


def scan_file(
    path: Path, stream: StreamCheck, *, batch: int = BATCH_EVENTS, cut_at: int = CUT_EVENTS
) -> Scanned:
    """Check the history at ``path`` (its header read already, its params those of
    ``stream``) through the fast scan; see the module docstring for what it raises.
    ``batch``: segments are judged once this many calls are queued; ``cut_at``: the calls
    open at a candidate point before it looks for cuts (as `StreamCheck.point`; tests set
    both small, so that each round is cut and judged before the next comes)."""
    lib = library()
    params = stream.params
    floor = max(params.dac_mmap_min_addr, params.mmap_min_addr)
    fixed = mm.MAP_FIXED | mm.MAP_FIXED_NOREPLACE
    if max(params.task_size, floor) >= 1 << 63:
        raise ScanUnsure("an address space beyond 2^63")
    handle = lib.mms_new(
        params.page_size,
        floor,
        params.task_size,
        fixed,
        mm.MAP_GROWSDOWN,
        batch,
        cut_at,
        KEY_BYTES,
    )
    if not handle:
        raise ScanUnsure("out of memory")
    try:
        return _scan(lib, handle, path, stream)
    finally:
        lib.mms_free(handle)


def _scan(lib: ctypes.CDLL, handle: int, path: Path, stream: StreamCheck) -> Scanned:
    ops: dict[tuple[Any, ...], mm.Op] = {}
    used = ctypes.c_int64()
    buf = bytearray(CHUNK)
    start = end = 0
    with path.open("rb", buffering=0) as f:
        f.seek(header_length(path))
        eof = False
        while not eof:
            if start:
                buf[: end - start] = buf[start:end]
                end -= start
                start = 0
            if end == len(buf):  # a line longer than the buffer
                buf.extend(bytes(len(buf)))
            got = f.readinto(memoryview(buf)[end:])
            eof = not got
            end += got or 0
            base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
            while True:
                rc = lib.mms_feed(handle, base + start, end - start, int(eof), ctypes.byref(used))
                start += used.value
                if rc == JUDGE:
                    _judge(lib, handle, stream, ops)
                    continue
                if rc == FALLBACK:
                    counts = _counts(lib, handle)
                    line = f" (line {counts[7]})" if counts[7] > 0 else ""
                    why = lib.mms_why(handle).decode()
                    raise ScanUnsure(f"{why}{line}")
                if rc == OUT_OF_ORDER:
                    raise OutOfOrder("a call starts before a cut already checked")
                break
    counts = _counts(lib, handle)
    trailer = lib.mms_trailer(handle).decode() if counts[2] else None
    if lib.mms_finish(handle, int(trailer is not None)) < 0:
        raise ScanUnsure("out of memory")
    _judge(lib, handle, stream, ops)
    counts = _counts(lib, handle)
    stream.count_repeats(counts[4], counts[5], counts[6])
    return Scanned(stream, counts[1], trailer, counts[4], counts[5])


def _counts(lib: ctypes.CDLL, handle: int) -> list[int]:
    out = (ctypes.c_int64 * 9)()
    lib.mms_counts(handle, out)
    return list(out)


def _judge(
    lib: ctypes.CDLL, handle: int, stream: StreamCheck, ops: dict[tuple[Any, ...], mm.Op]
) -> None:
    """The queued segments judged by the stream's checker; their keys proved when all are
    linearizable."""
    calls_at, ends_at, count = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_int64()
    n = lib.mms_queue(handle, ctypes.byref(calls_at), ctypes.byref(ends_at), ctypes.byref(count))
    if n < 0:
        raise ScanUnsure("out of memory")
    if not n:
        lib.mms_settle(handle, 0)
        return
    rows = array("q", ctypes.string_at(calls_at.value or 0, 8 * FIELDS * n)).tolist()
    ends = array("q", ctypes.string_at(ends_at.value or 0, 8 * count.value)).tolist()
    segments: list[list[Event]] = []
    rounds: list[int] = []
    segment: list[Event] = []
    at = 0
    for k in range(n):
        task, rnd, kind, addr, length, prot, flags, fd, offset, call, has_ret, ret, result = rows[
            FIELDS * k : FIELDS * k + FIELDS
        ]
        key = (kind, addr, length, prot, flags, fd, offset)
        op = ops.get(key)
        if op is None:
            if len(ops) >= _OPS:
                ops.clear()
            op = ops[key] = mm.Op(KINDS[kind], addr, length, prot, flags, fd, offset)
        if has_ret:
            segment.append(Event(task, op, result, call, ret))
        else:
            segment.append(Event(task, op, None, call, None))
        rounds.append(rnd)
        if k + 1 == ends[at]:
            segments.append(segment)
            segment = []
            at += 1
    ok = stream.check_segments(segments, rounds)
    if lib.mms_settle(handle, int(ok)) < 0:
        raise ScanUnsure("out of memory")
