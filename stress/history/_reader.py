"""Reading a history file: streaming, validating every line (see docs/history-format.md).

Operation lines go through a fast path: msgspec decodes each line straight into a typed record
(`_Line`, with the format's types and the ranges msgspec can check in C), and the few checks
left (64-bit bounds, both-or-neither of ``e``/``x``, ``e >= c``) run in Python. A line that does
not pass all of it, however slightly, is decoded again by the standard json module and judged
by `parse_operation` / the record rules, exactly as before, so the error names its line and
its problem the same way. msgspec accepts only strict JSON (no NaN, no lone surrogates), a
subset of what json reads, and gives the same values for it (the last of duplicate keys wins
in both), so the fast path never accepts a line the slow path would reject or read otherwise.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import attrs
import msgspec

from mm import Op
from stress.errors import UsageError
from stress.history._record import (
    FORMAT_KEY,
    FORMAT_VERSION,
    KINDS,
    MIN_RESULT,
    U64,
    Header,
    Operation,
)

_T_MAX = 1 << 63
_FD_MAX = 1 << 31
BATCH = 2048  # lines read from the file at once
SHARED_CALLS = 1 << 16  # distinct calls whose `Op` is shared at a time

# msgspec checks int bounds only within int64: the fast path takes values below 2^63 (every
# field of a usual line), the slow path the rest up to 2^64 (addresses high in the space).
_Nat = Annotated[int, msgspec.Meta(ge=0, le=_T_MAX - 1)]
_Time = _Nat


class _Line(msgspec.Struct, gc=False):
    """An operation line as the fast path decodes it (unknown keys ignored, as in the format)."""

    k: Literal["mmap", "munmap", "mprotect"]
    t: _Nat
    a: _Nat
    n: _Nat
    c: _Time
    r: _Nat = 0
    p: _Nat = 0
    f: _Nat = 0
    fd: Annotated[int, msgspec.Meta(ge=-1, le=_FD_MAX - 1)] = -1
    o: _Nat = 0
    e: _Time | None = None
    x: Annotated[int, msgspec.Meta(ge=MIN_RESULT, le=_T_MAX - 1)] | None = None


_DECODE_LINE = msgspec.json.Decoder(_Line).decode
_DECODE_ANY = msgspec.json.Decoder().decode


def _int(d: dict[str, Any], key: str, where: str, lo: int, hi: int, default: Any = ...) -> Any:
    v = d.get(key, default)
    if v is ...:
        raise UsageError(f"{where}: missing key {key!r}")
    if v is None and default is None:
        return None
    if type(v) is not int:
        raise UsageError(f"{where}: {key!r} must be an integer, not {json.dumps(v)}")
    if not lo <= v < hi:
        raise UsageError(f"{where}: {key!r} = {v} is out of range [{lo}, {hi})")
    return v


def loads(text: str, where: str, what: str = "") -> Any:
    """json.loads, where a mistake (or nesting deep enough to exhaust the stack) is a
    UsageError naming the place. msgspec's generic decoder goes first (several times faster;
    for the strict JSON it accepts it gives the same values, see the module docstring); what
    it refuses is json's to read or to name the problem of."""
    try:
        return _DECODE_ANY(text)
    except (msgspec.DecodeError, RecursionError):
        pass
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{where}: bad JSON{what}: {exc}") from None
    except RecursionError:
        raise UsageError(f"{where}: bad JSON{what}: nested too deeply") from None


def parse_header(line: str, where: str) -> Header:
    """Validate and decode the header line."""
    d = loads(line, where, " in header")
    if not isinstance(d, dict) or FORMAT_KEY not in d:
        raise UsageError(f"{where}: not an mmrace history (no {FORMAT_KEY!r} header)")
    version = d[FORMAT_KEY]
    if version != FORMAT_VERSION:
        raise UsageError(
            f"{where}: unknown history format version {json.dumps(version)} "
            f"(this tool reads version {FORMAT_VERSION})"
        )
    checks: list[tuple[str, type | tuple[type, ...], bool]] = [
        ("target", str, False),
        ("tool", str, False),
        ("workload", str, False),
        ("kernel", str, False),
        ("seed", int, True),
        ("params", dict, False),
        ("privileged", bool, True),
        ("arena", dict, True),
        ("extra", dict, False),
    ]
    values: dict[str, Any] = {}
    for key, kind, nullable in checks:
        if key not in d:
            if key == "target":
                raise UsageError(f"{where}: missing header key 'target'")
            continue
        v = d[key]
        if v is None and nullable:
            values[key] = None
            continue
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise UsageError(f"{where}: header key {key!r} has the wrong type: {json.dumps(v)}")
        values[key] = v
    arena = values.get("arena")
    if arena is not None:
        for key in ("base", "size"):
            _int(arena, key, f"{where}: arena", 0, U64)
    return Header(version=version, **values)


def parse_operation(d: Any, where: str) -> Operation:
    """Validate and decode one decoded operation line."""
    if not isinstance(d, dict):
        raise UsageError(f"{where}: expected a JSON object")
    kind = d.get("k")
    if kind not in KINDS:
        if kind is None:
            raise UsageError(f"{where}: missing key 'k'")
        raise UsageError(f"{where}: unknown operation kind {json.dumps(kind)}")
    task = _int(d, "t", where, 0, U64)
    rnd = _int(d, "r", where, 0, U64, 0)
    addr = _int(d, "a", where, 0, U64)
    length = _int(d, "n", where, 0, U64)
    prot = _int(d, "p", where, 0, U64, 0)
    flags = _int(d, "f", where, 0, U64, 0)
    fd = _int(d, "fd", where, -1, _FD_MAX, -1)
    offset = _int(d, "o", where, 0, U64, 0)
    call = _int(d, "c", where, 0, _T_MAX)
    ret = _int(d, "e", where, 0, _T_MAX, None)
    result = _int(d, "x", where, MIN_RESULT, U64, None)
    if (ret is None) != (result is None):
        raise UsageError(f"{where}: 'e' (return time) and 'x' (result) must both be present")
    if ret is not None and ret < call:
        raise UsageError(f"{where}: returns at {ret} before its call at {call}")
    return Operation(task, Op(kind, addr, length, prot, flags, fd, offset), result, call, ret, rnd)


@attrs.define(eq=False)
class HistoryReader:
    """Iterates over the operations of a history file, validating each line.

    Round records and the trailer are collected on the way: ``rounds`` maps a round index to
    its record, ``trailer`` is the ``end`` record (None until read, or when the run was killed).
    Identical calls share one `Op` object, which keeps large histories small in memory (the
    last `SHARED_CALLS` distinct ones: a stream of calls that vary without end stays bounded).
    """

    path: Path
    handle: IO[str]
    lineno: int = 1
    rounds: dict[int, dict[str, Any]] = attrs.Factory(dict)
    keep_rounds: bool = True  # False: validate round records but do not keep them
    trailer: dict[str, Any] | None = None
    # called with each round record as it is read (after the round's calls were yielded)
    on_round: Callable[[int, dict[str, Any]], None] | None = None
    # True: a last line that is cut short (no newline, not a record) ends the history instead
    # of being an error; ``torn`` then says where (a killed run, a full disk)
    allow_torn: bool = False
    torn: str | None = None

    def __iter__(self) -> Iterator[Operation]:
        for fields in self.records():
            yield Operation(*fields)

    def records(self) -> Iterator[tuple[int, Op, int | None, int, int | None, int]]:
        """The operations as plain tuples ``(task, op, result, call, ret, round)``: the
        fields of `Operation` in order, without building the record (faster in bulk)."""
        calls: dict[tuple[Any, ...], Op] = {}
        path = self.path
        handle = self.handle
        count = 0
        decode = _DECODE_LINE
        failed = msgspec.DecodeError  # ValidationError is one too
        lineno = self.lineno
        read_batch = getattr(handle, "read_batch", None)
        open_end = self.trailer is None  # no trailer read yet
        try:
            while True:
                try:
                    batch = read_batch() if read_batch else list(islice(handle, BATCH))
                except UnicodeDecodeError:
                    raise UsageError(f"{path}:{lineno + 1}: not UTF-8 text") from None
                except OSError as exc:
                    raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
                if not batch:
                    return
                first = lineno + 1
                for lineno, line in enumerate(batch, first):
                    try:
                        v = decode(line)
                    except failed:
                        pass
                    else:
                        ret = v.e
                        result = v.x
                        # Fast path: what msgspec could not check (both ``e`` and ``x`` or
                        # neither; ``e >= c``; no line after the trailer).
                        if open_end and (
                            ret is None if result is None else ret is not None and v.c <= ret
                        ):
                            key = (v.k, v.a, v.n, v.p, v.f, v.fd, v.o)
                            c = calls.get(key)
                            if c is None:
                                if len(calls) >= SHARED_CALLS:  # bounded: a stream's calls
                                    calls.clear()  # vary without end (round bases)
                                c = calls[key] = Op(*key)
                            count += 1
                            yield v.t, c, result, v.c, ret, v.r
                            continue
                    # The slow path: the standard decoder and the full rules, which name the
                    # problem (or accept what the fast path does not handle).
                    self.lineno = lineno
                    if not line.strip():
                        continue
                    try:
                        d = loads(line, f"{path}:{lineno}")
                    except UsageError:
                        if self.allow_torn and not line.endswith("\n"):
                            self.torn = f"line {lineno} is cut short"
                            return
                        raise
                    if self.trailer is not None:
                        raise UsageError(f"{path}:{lineno}: line after the trailer")
                    where = f"{path}:{lineno}"
                    if type(d) is dict and "k" in d:
                        op = parse_operation(d, where)
                        c = op.op
                        c = calls.setdefault(
                            (c.kind, c.addr, c.length, c.prot, c.flags, c.fd, c.offset), c
                        )
                        count += 1
                        yield op.task, c, op.result, op.call, op.ret, op.round
                        continue
                    self._record(d, where, count)
                    open_end = self.trailer is None
        finally:
            self.lineno = lineno
            handle.close()

    def _record(self, d: Any, where: str, count: int) -> None:
        """A line that is not an operation: a round record or the trailer."""
        if not isinstance(d, dict):
            raise UsageError(f"{where}: expected a JSON object")
        if "round" in d:
            index = _int(d, "round", where, 0, U64)
            if self.keep_rounds:
                self.rounds[index] = d
            if self.on_round is not None:
                self.on_round(index, d)
            return
        if "end" in d:
            end = d["end"]
            if not isinstance(end, dict):
                raise UsageError(f"{where}: 'end' must be an object")
            ops = end.get("operations", count)
            if ops != count:
                raise UsageError(f"{where}: trailer counts {ops} operations, the file has {count}")
            self.trailer = end
            return
        raise UsageError(f"{where}: missing key 'k' (not an operation, round record or trailer)")


def read_history(path: Path | str) -> tuple[Header, HistoryReader]:
    """Open a history: its header now, and a reader that streams the operations."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        first = handle.readline()
    except UnicodeDecodeError:
        handle.close()
        raise UsageError(f"{path}:1: not UTF-8 text") from None
    except OSError as exc:
        handle.close()
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not first.strip():
        handle.close()
        raise UsageError(f"{path}:1: empty file (no header)")
    try:
        header = parse_header(first, f"{path}:1")
    except UsageError:
        handle.close()
        raise
    return header, HistoryReader(path, handle)


class _Tail:
    """The complete lines of a file that is still being written, batch by batch: waits at the
    end of the file until more is written, or until ``finished()`` says the writer is done
    (then whatever is left after the last newline comes as a last, cut-short line)."""

    def __init__(self, fd: int, finished: Callable[[], bool], poll: float) -> None:
        self.fd = fd
        self.finished = finished
        self.poll = poll
        self.rest = b""

    def read_batch(self) -> list[str]:
        while True:
            cut = self.rest.rfind(b"\n") + 1
            if cut:
                lines, self.rest = self.rest[:cut], self.rest[cut:]
                return lines.decode("utf-8").splitlines(keepends=True)
            data = os.read(self.fd, 1 << 20)
            if data:
                self.rest += data
                continue
            if self.finished():
                if os.fstat(self.fd).st_size > os.lseek(self.fd, 0, os.SEEK_CUR):
                    continue  # written meanwhile
                rest, self.rest = self.rest, b""
                return [rest.decode("utf-8")] if rest else []
            time.sleep(self.poll)

    def close(self) -> None:
        os.close(self.fd)


def follow_history(
    path: Path | str, finished: Callable[[], bool], *, poll: float = 0.02
) -> tuple[Header, HistoryReader]:
    """Open a history that is still being written (`read_history` on a growing file): waits
    for its header, then streams its lines as they are written, until ``finished()`` is true at
    the end of the file. A cut-short last line ends it (``torn``)."""
    path = Path(path)
    while True:
        try:
            fd = os.open(path, os.O_RDONLY)
            break
        except FileNotFoundError:
            if finished():
                raise UsageError(f"{path}: cannot read: no such file") from None
            time.sleep(poll)
    tail = _Tail(fd, finished, poll)
    head: list[str] = []
    while not head:
        head = tail.read_batch()
        if not head:
            tail.close()
            raise UsageError(f"{path}:1: empty file (no header)")
    header = parse_header(head[0], f"{path}:1")
    if len(head) > 1:  # lines read with the header: hand them out first
        tail.rest = "".join(head[1:]).encode("utf-8") + tail.rest
    reader = HistoryReader(path, tail, allow_torn=True)  # type: ignore[arg-type]
    return header, reader


def load_history(path: Path | str) -> tuple[Header, list[Operation]]:
    """Read a whole history into memory."""
    header, reader = read_history(path)
    reader.keep_rounds = False  # one record per round: not needed here, not worth the memory
    enabled = gc.isenabled()
    gc.disable()  # many small acyclic objects: spare the cyclic GC's rescans
    try:
        return header, list(reader)
    finally:
        if enabled:
            gc.enable()
