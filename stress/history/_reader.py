"""Reading a history file: streaming, validating every line (see docs/history-format.md).

Lines are decoded in batches (one `json.loads` per batch) and checked on a fast path; anything
unusual is decoded again line by line so that the error names its line.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import IO, Any

import attrs

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
BATCH = 2048  # lines decoded per json.loads call


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


def parse_header(line: str, where: str) -> Header:
    """Validate and decode the header line."""
    try:
        d = json.loads(line)
    except ValueError as exc:
        raise UsageError(f"{where}: bad JSON in header: {exc}") from None
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
    Identical calls share one `Op` object, which keeps large histories small in memory.
    """

    path: Path
    handle: IO[str]
    lineno: int = 1
    rounds: dict[int, dict[str, Any]] = attrs.Factory(dict)
    keep_rounds: bool = True  # False: validate round records but do not keep them
    trailer: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[Operation]:
        for fields in self.records():
            yield Operation(*fields)

    def records(self) -> Iterator[tuple[int, Op, int | None, int, int | None, int]]:
        """The operations as plain tuples ``(task, op, result, call, ret, round)``: the
        fields of `Operation` in order, without building the record (faster in bulk)."""
        calls: dict[tuple[Any, ...], Op] = {}
        path = self.path
        count = 0
        kinds = set(KINDS)
        try:
            for lineno, d in _decoded(self.handle, path):
                self.lineno = lineno
                if self.trailer is not None:
                    raise UsageError(f"{path}:{lineno}: line after the trailer")
                if type(d) is dict and "k" in d:
                    # Fast path: every field present with a plausible type and range; anything
                    # else goes to `parse_operation`, which names the problem.
                    get = d.get
                    kind = d["k"]
                    task = get("t")
                    rnd = get("r", 0)
                    addr = get("a")
                    length = get("n")
                    prot = get("p", 0)
                    flags = get("f", 0)
                    fd = get("fd", -1)
                    offset = get("o", 0)
                    call = get("c")
                    ret = get("e")
                    result = get("x")
                    if (
                        kind in kinds
                        and type(task) is int
                        and type(rnd) is int
                        and type(addr) is int
                        and type(length) is int
                        and type(prot) is int
                        and type(flags) is int
                        and type(fd) is int
                        and type(offset) is int
                        and type(call) is int
                        and type(ret) is int
                        and type(result) is int
                        and 0 <= call <= ret < _T_MAX
                        and MIN_RESULT <= result < U64
                        # all non-negative and below 2^64 at once (a negative one makes the
                        # OR negative, and -1 >> 64 == -1)
                        and (task | rnd | addr | length | prot | flags | offset) >> 64 == 0
                        and -1 <= fd < _FD_MAX
                    ):
                        key = (kind, addr, length, prot, flags, fd, offset)
                        c = calls.get(key)
                        if c is None:
                            c = calls[key] = Op(kind, addr, length, prot, flags, fd, offset)
                        count += 1
                        yield task, c, result, call, ret, rnd
                        continue
                    op = parse_operation(d, f"{path}:{self.lineno}")
                    c = op.op
                    key = (c.kind, c.addr, c.length, c.prot, c.flags, c.fd, c.offset)
                    c = calls.setdefault(key, c)
                    count += 1
                    yield op.task, c, op.result, op.call, op.ret, op.round
                    continue
                self._record(d, f"{path}:{self.lineno}", count)
        finally:
            self.handle.close()

    def _record(self, d: Any, where: str, count: int) -> None:
        """A line that is not an operation: a round record or the trailer."""
        if not isinstance(d, dict):
            raise UsageError(f"{where}: expected a JSON object")
        if "round" in d:
            index = _int(d, "round", where, 0, U64)
            if self.keep_rounds:
                self.rounds[index] = d
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


def _decoded(handle: IO[str], path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, decoded JSON value) for each non-blank line after the header.

    Lines are decoded in batches with one `json.loads` of ``[line,line,...]`` (much faster than
    one call per line); a batch that does not decode to exactly one value per line that looks
    like an object is decoded again line by line, which names the bad line.
    """
    lineno = 1
    loads = json.loads
    try:
        while True:
            batch = list(islice(handle, BATCH))
            if not batch:
                return
            first = lineno + 1
            lineno += len(batch)
            values: list[Any] | None = None
            if all(line[:1] == "{" and line.rstrip()[-1:] == "}" for line in batch):
                try:
                    values = loads("[" + ",".join(batch) + "]")
                except ValueError:
                    values = None
                if values is not None and len(values) != len(batch):
                    values = None
            if values is not None:
                yield from zip(range(first, lineno + 1), values, strict=True)
                continue
            for k, line in enumerate(batch, first):
                if not line.strip():
                    continue
                try:
                    yield k, loads(line)
                except ValueError as exc:
                    raise UsageError(f"{path}:{k}: bad JSON: {exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}:{lineno + 1}: not UTF-8 text") from None


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
    if not first.strip():
        handle.close()
        raise UsageError(f"{path}:1: empty file (no header)")
    try:
        header = parse_header(first, f"{path}:1")
    except UsageError:
        handle.close()
        raise
    return header, HistoryReader(path, handle)


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
