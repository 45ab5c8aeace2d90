"""The native racer: C source shipped in the package, built on first use, loaded with ctypes.

`native/racer.c` (with the gate in `native/gate.h`) runs a round of raw mmap/munmap/mprotect
calls on N pthreads released together (docs/targets.md, "Engines"). `build(kind)` compiles it
with the system C compiler (`$CC`, else the first of `COMPILERS` on PATH) into a per-user cache,
$XDG_CACHE_HOME/mmrace/<hash>/ (default ~/.cache), the hash covering every source file, the
compiler's path and version and the flags, so a changed source or compiler builds afresh and
anything else reuses the file. Kinds: "racer" (a shared library for the kernel target), "agent"
(the static native agent, `native/agent.c`: musl-gcc -static when present, else cc -static),
"bare" (the bench's bare pthread loop, a shared library built from the source
`stress.selftest` passes in, with `native/gate.h` on the include path).
No compiler, or a failed build: `NativeUnavailable` with a one-line reason (callers fall back
to the Python engine and say so).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
import threading
from array import array
from collections.abc import Sequence
from pathlib import Path

import mm

SOURCE_DIR = Path(__file__).resolve().parent / "native"
COMPILERS = ("cc", "gcc")
STATIC_COMPILERS = ("musl-gcc",)
OP_FIELDS = 7  # kind, addr, length, prot, flags, fd, offset
REC_FIELDS = 3  # result, call ns, return ns
ABI = 4
DEBUG_ENV = "MMRACE_NATIVE_DEBUG"
KINDS = {"mmap": 0, "munmap": 1, "mprotect": 2}
_U64 = (1 << 64) - 1
_OP = struct.Struct(f"<{OP_FIELDS}Q")
BUILDS: list[Path] = []  # every file this process compiled (tests look)
_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_stuck: list[object] = []  # racers and buffers of rounds that timed out: never freed


class NativeUnavailable(RuntimeError):
    """The native racer cannot be built or loaded here (the message says why, in one line)."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mmrace"


def find_compiler(static: bool = False) -> str:
    """The C compiler's path: $CC, else the first of `COMPILERS` (for static builds
    `STATIC_COMPILERS` first) found on PATH; NativeUnavailable when there is none."""
    names = [os.environ["CC"]] if os.environ.get("CC") else []
    names += [*(STATIC_COMPILERS if static else ()), *COMPILERS]
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise NativeUnavailable(f"no C compiler found (tried {', '.join(names)})")


def _flags(kind: str, compiler: str) -> list[str]:
    common = ["-O2", "-std=gnu11", "-Wall", "-I", str(SOURCE_DIR)]
    if kind == "agent":
        return [*common, "-static", "-pthread"]
    return [*common, "-fPIC", "-shared", "-pthread"]


def build(kind: str, source: Path | None = None) -> Path:
    """The built file for `kind` (see the module docstring), compiled unless cached."""
    source = source or SOURCE_DIR / ("racer.c" if kind == "racer" else "agent.c")
    compiler = find_compiler(static=kind == "agent")
    flags = _flags(kind, compiler)
    digest = hashlib.sha256()
    for path in sorted({*SOURCE_DIR.glob("*.[ch]"), source}):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(compiler.encode() + b"\0" + " ".join(flags).encode() + b"\0")
    digest.update(_version(compiler))
    folder = cache_root() / digest.hexdigest()[:16]
    out = folder / {"racer": "libmmrace-racer.so", "agent": "mmrace-agent"}.get(kind, "libbare.so")
    with _lock:
        if out.exists():
            return out
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{out.name}.")
            os.close(fd)
            done = subprocess.run(
                [compiler, *flags, "-o", tmp, str(source)],
                capture_output=True,
                timeout=300,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise NativeUnavailable(f"cannot build the native {kind}: {exc}") from None
        if done.returncode != 0:
            Path(tmp).unlink(missing_ok=True)
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            why = next((ln for ln in lines if "error" in ln), lines[-1] if lines else "")
            raise NativeUnavailable(f"{Path(compiler).name} failed on {source.name}: {why[:200]}")
        os.replace(tmp, out)
        BUILDS.append(out)
        return out


def _version(compiler: str) -> bytes:
    try:
        done = subprocess.run([compiler, "--version"], capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return b""
    return done.stdout


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
