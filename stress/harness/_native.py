"""The native racer: C source shipped in the package, built on first use, loaded with ctypes.

`native/racer.c` (with the gate in `native/gate.h`) runs a round of raw mmap/munmap/mprotect
calls on N pthreads released together (docs/targets.md, "Engines"). `build(kind)` compiles it
with the system C compiler into a per-user cache (`stress.cbuild`: a changed source or compiler
builds afresh, anything else reuses the file). Kinds: "racer" (a shared library for the kernel
target), "agent" (the static native agent, `native/agent.c`: musl-gcc -static when present,
else cc -static), "bare" (the bench's bare pthread loop, a shared library built from the source
`stress.selftest` passes in, with `native/gate.h` on the include path).
No compiler, or a failed build: `NativeUnavailable` with a one-line reason (callers fall back
to the Python engine and say so).
"""

from __future__ import annotations

import ctypes
import os
import struct
from array import array
from collections.abc import Sequence
from pathlib import Path

import mm
from stress.cbuild import NativeUnavailable, compile_cached, find_compiler

SOURCE_DIR = Path(__file__).resolve().parent / "native"
OP_FIELDS = 7  # kind, addr, length, prot, flags, fd, offset
REC_FIELDS = 3  # result, call ns, return ns
ABI = 4
DEBUG_ENV = "MMRACE_NATIVE_DEBUG"
KINDS = {"mmap": 0, "munmap": 1, "mprotect": 2}
_U64 = (1 << 64) - 1
_OP = struct.Struct(f"<{OP_FIELDS}Q")
_library: ctypes.CDLL | None = None
_stuck: list[object] = []  # racers and buffers of rounds that timed out: never freed


def _flags(kind: str) -> list[str]:
    common = ["-O2", "-std=gnu11", "-Wall", "-I", str(SOURCE_DIR)]
    if kind == "agent":
        return [*common, "-static", "-pthread"]
    return [*common, "-fPIC", "-shared", "-pthread"]


def build(kind: str, source: Path | None = None) -> Path:
    """The built file for `kind` (see the module docstring), compiled unless cached."""
    source = source or SOURCE_DIR / ("racer.c" if kind == "racer" else "agent.c")
    out = {"racer": "libmmrace-racer.so", "agent": "mmrace-agent"}.get(kind, "libbare.so")
    return compile_cached(
        source,
        out,
        _flags(kind),
        compiler=find_compiler(static=kind == "agent"),
        include=[SOURCE_DIR],
        what=f"native {kind}",
    )


def library() -> ctypes.CDLL:
    """The racer library, built and loaded once per process."""
    global _library
    if _library is None:
        path = build("racer")
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise NativeUnavailable(f"cannot load {path}: {exc}") from None
        if lib.mmr_abi() != ABI:
            raise NativeUnavailable(f"{path}: ABI {lib.mmr_abi()}, expected {ABI}")
        lib.mmr_open.restype = ctypes.c_void_p
        lib.mmr_open.argtypes = [ctypes.c_int]
        lib.mmr_round.restype = ctypes.c_int
        lib.mmr_round.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_void_p,
            ctypes.c_int64,
        ]
        lib.mmr_batch.restype = ctypes.c_int
        lib.mmr_batch.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_char_p,
            ctypes.c_void_p,
            ctypes.c_int64,
            ctypes.c_void_p,
        ]
        lib.mmr_debug.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.mmr_close.argtypes = [ctypes.c_void_p]
        _library = lib
    return _library


def encode(op: mm.Op) -> bytes:
    """One op as the racer reads it (7 little-endian u64 words)."""
    return _OP.pack(
        KINDS[op.kind],
        op.addr & _U64,
        op.length & _U64,
        op.prot & _U64,
        op.flags & _U64,
        op.fd & _U64,
        op.offset & _U64,
    )


def debug_switches() -> dict[str, int]:
    """Test-only switches from $MMRACE_NATIVE_DEBUG: ``forge:T`` (task T reports its failed
    mmaps as successes), ``hang:T`` (task T's first call never returns) and ``move:T`` (task
    T's mmaps land `length` bytes above the address asked for), comma-separated."""
    out = {}
    for item in os.environ.get(DEBUG_ENV, "").split(","):
        kind, _, task = item.partition(":")
        if kind in ("forge", "hang", "move") and task.isdigit():
            out[f"{kind}_task"] = int(task)
    return out


# One task's records from a round: (result, call ns, return ns); None for not returned.
Record = tuple[int | None, int, int | None]
# Why `run_batch` stopped (racer.c's MMR_DONE ...): all ran, a race hung, a race mmap moved,
# a tail mmap (a footprint-check probe) answered with another address.
DONE, HUNG, MOVED, STRAY = 0, 1, 2, 3
# A batch's round as given: the race's plans (from `encode`) and the serial tail's ops.
BatchPlan = tuple[Sequence[Sequence[bytes]], Sequence[bytes]]
# A batch's round as laid out in the out words: its first op's index, its plans' lengths, its
# tail's length.
BatchLayout = tuple[int, tuple[int, ...], int]


def _starts(lengths: Sequence[int]) -> list[int]:
    """Where each of consecutive runs of these lengths starts, and where the last one ends."""
    starts = [0]
    for n in lengths:
        starts.append(starts[-1] + n)
    return starts


def _frame(lengths: Sequence[int], tail: int) -> bytes:
    """A round's entry in mmr_batch's shape: plan count, then where each plan starts, where the
    tail starts and where it ends, counted from the round's first op (int32 words)."""
    starts = _starts((*lengths, tail))
    return struct.pack(f"<{len(starts) + 1}i", len(lengths), *starts)


def _decode(out: array[int], start: int, lengths: Sequence[int]) -> list[list[Record]]:
    """Each plan's records from `out` (3 words per op from op index `start`); a plan's records
    end at its first call never started (a call before it hung)."""
    records: list[list[Record]] = []
    i = start * REC_FIELDS
    for n in lengths:
        mine: list[Record] = []
        end = i + n * REC_FIELDS
        for j in range(i, end, REC_FIELDS):
            result, call, ret = out[j], out[j + 1], out[j + 2]
            if call < 0:
                break
            mine.append((result, call, ret) if ret >= 0 else (None, call, None))
        records.append(mine)
        i = end
    return records


class NativeRacer:
    """`threads` pthreads of the C racer (see racer.c); one round at a time."""

    def __init__(self, threads: int) -> None:
        self._lib = library()
        handle = self._lib.mmr_open(threads)
        if not handle:
            raise NativeUnavailable(f"the native racer could not start {threads} threads")
        self._handle: int | None = handle
        self.threads = threads
        self._out = array("q", bytes(8 * REC_FIELDS * 64))
        self._offsets: dict[tuple[int, ...], bytes] = {}
        self._frames: dict[tuple[tuple[int, ...], int], bytes] = {}  # mmr_batch's round shapes
        self.stuck = False
        switches = debug_switches()
        if switches:
            self.debug(**switches)

    def debug(self, *, forge_task: int = -1, hang_task: int = -1, move_task: int = -1) -> None:
        """Test switches: lie about task `forge_task`'s failed mmaps; hang `hang_task`; place
        `move_task`'s mmaps elsewhere."""
        assert self._handle is not None
        self._lib.mmr_debug(self._handle, forge_task, hang_task, move_task)

    def _buffer(self, total: int) -> array[int]:
        out = self._out
        if len(out) < REC_FIELDS * total:
            out = self._out = array("q", bytes(8 * REC_FIELDS * total))
        return out

    def _usable(self) -> None:
        if self._handle is None or self.stuck:
            raise RuntimeError("native racer closed" if self._handle is None else "racer stuck")

    def run(
        self, encoded: Sequence[Sequence[bytes]], timeout: float
    ) -> tuple[list[list[Record]], bool]:
        """Run a round (task i: `encoded[i]`, ops from `encode`); each task's records (a call
        never started has none) and whether every call returned within `timeout` seconds."""
        self._usable()
        lengths = tuple(len(p) for p in encoded)
        offsets = self._offsets.get(lengths)
        if offsets is None:
            starts = _starts(lengths)
            offsets = self._offsets[lengths] = struct.pack(f"<{len(starts)}i", *starts)
        out = self._buffer(sum(lengths))
        ops = b"".join(b for plan in encoded for b in plan)
        address = out.buffer_info()[0]
        late = self._lib.mmr_round(
            self._handle, len(encoded), ops, offsets, address, int(timeout * 1e9)
        )
        if late:
            self.stuck = True
            _stuck.append((self, out, ops, offsets))  # a stuck thread may still write
        return _decode(out, 0, lengths), not late

    def run_batch(
        self, rounds: Sequence[BatchPlan], timeout: float
    ) -> tuple[array[int], list[BatchLayout], int]:
        """Run rounds in one C call (racer.c's mmr_batch): each round's race, as `run` does,
        then its tail on the calling thread. The out words (3 per op, the rounds one after
        another: result, call ns, return ns, -1 for not started / not returned), the layout of
        each round whose race ran (`BatchLayout`; the last one's tail did not run when the
        batch stopped HUNG or MOVED), and why the batch stopped (DONE, HUNG: the racer is
        stuck, MOVED, STRAY). The words are valid until the next call."""
        self._usable()
        frames = self._frames
        shape: list[bytes] = []
        chunks: list[bytes] = []
        layout: list[BatchLayout] = []
        at = 0
        for plans, serial in rounds:
            lengths = tuple(len(p) for p in plans)
            key = (lengths, len(serial))
            frame = frames.get(key)
            if frame is None:
                if len(frames) >= 4096:
                    frames.clear()
                frame = frames[key] = _frame(lengths, len(serial))
            shape.append(frame)
            layout.append((at, lengths, len(serial)))
            for plan in plans:
                chunks.extend(plan)
            chunks.extend(serial)
            at += sum(lengths) + len(serial)
        out = self._buffer(at)
        ops = b"".join(chunks)
        packed = b"".join(shape)
        why = ctypes.c_int32(DONE)
        ran = self._lib.mmr_batch(
            self._handle,
            len(rounds),
            packed,
            ops,
            out.buffer_info()[0],
            int(timeout * 1e9),
            ctypes.byref(why),
        )
        if why.value == HUNG:
            self.stuck = True
            _stuck.append((self, out, ops, packed))  # a stuck thread may still write
        return out, [layout[j] for j in range(ran)], why.value

    def close(self) -> None:
        """Join the threads (a stuck racer is left as it is: its thread never returns)."""
        handle, self._handle = self._handle, None
        if handle is not None and not self.stuck:
            self._lib.mmr_close(handle)
