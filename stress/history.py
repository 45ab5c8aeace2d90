"""The history of a run: every call a task made, with its result and its time span.

A history is a JSON Lines file (docs/history-format.md): one header line, then one line per
operation, optionally interleaved with per-round records and ended by a trailer. `HistoryWriter`
streams it out (flushing every `flush_every` lines, so a killed run loses at most one buffer);
`read_history` (in `stress.history_reader`, re-exported here) streams it back, validating every
line. A call's arguments are an `mm.Op`; the module does not import the checker.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

import attrs

from mm import Op

FORMAT_VERSION = 1
FORMAT_KEY = "mmrace_history"
KINDS = ("mmap", "munmap", "mprotect")
U64 = 1 << 64
# Raw results: an address/0 on success or -errno (the kernel's errno range is 1..4095).
MIN_RESULT = -4095


@attrs.frozen(slots=True)
class Operation:
    """One recorded call: who (task, round), what (`op`), the raw result, and when.

    ``result`` is the raw system-call result (address or 0, or ``-errno``); None when the call
    got no response (pending), in which case ``ret`` is None too. ``call`` is a monotonic
    nanosecond time taken just before the call, ``ret`` one taken just after it returned.
    """

    task: int
    op: Op
    result: int | None
    call: int
    ret: int | None
    round: int = 0

    @property
    def pending(self) -> bool:
        return self.ret is None


@attrs.frozen
class Header:
    """The first line: what produced the history and the model parameters to judge it by."""

    target: str
    workload: str = ""
    seed: int | None = None
    params: dict[str, Any] = attrs.field(factory=dict)
    kernel: str = ""
    privileged: bool | None = None
    arena: dict[str, int] | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)
    tool: str = ""
    version: int = FORMAT_VERSION

    @classmethod
    def create(cls, target: str, **fields: Any) -> Header:
        """A header for a new run: tool version and host kernel filled in."""
        from stress import __version__

        fields.setdefault("kernel", host_kernel())
        return cls(target=target, tool=__version__, **fields)

    def to_json(self) -> dict[str, Any]:
        return {
            FORMAT_KEY: self.version,
            "tool": self.tool,
            "target": self.target,
            "workload": self.workload,
            "seed": self.seed,
            "params": self.params,
            "kernel": self.kernel,
            "privileged": self.privileged,
            "arena": self.arena,
            "extra": self.extra,
        }


def host_kernel() -> str:
    """`uname -srvm` of this machine, e.g. `Linux 6.8.0-45-generic #45 x86_64`."""
    u = platform.uname()
    return f"{u.system} {u.release} {u.version} {u.machine}"


# --- writing ----------------------------------------------------------------------------------


def call_fields(c: Any) -> str:
    """The call's part of an operation line: ``"k":..,"a":..,"n":..`` and the non-default
    ``"p"``, ``"f"``, ``"fd"``, ``"o"`` (no braces)."""
    parts = [f'"k":"{c.kind}","a":{c.addr},"n":{c.length}']
    if c.prot:
        parts.append(f',"p":{c.prot}')
    if c.flags:
        parts.append(f',"f":{c.flags}')
    if c.fd != -1:
        parts.append(f',"fd":{c.fd}')
    if c.offset:
        parts.append(f',"o":{c.offset}')
    return "".join(parts)


def encode_operation(op: Operation, fields: str | None = None) -> str:
    """One compact JSON line (without the newline) for an operation; ``fields`` is
    ``call_fields(op.op)`` when the caller already has it."""
    if fields is None:
        fields = call_fields(op.op)
    head = f'{{"t":{op.task},"r":{op.round},{fields},"c":{op.call}'
    if op.ret is not None:
        return f'{head},"e":{op.ret},"x":{op.result}}}'
    return head + "}"


@attrs.define(eq=False)
class HistoryWriter:
    """Streams a history to ``path``: the header at once, then operations as they come.

    Use as a context manager. Lines are buffered and flushed (with ``os.fsync`` when
    ``sync``) every ``flush_every`` lines and on close.
    """

    path: Path
    header: Header
    flush_every: int = 4096
    sync: bool = False
    count: int = 0
    _file: IO[str] | None = None
    _buffer: list[str] = attrs.Factory(list)
    _fields: dict[int, tuple[Any, str]] = attrs.Factory(dict)

    def __attrs_post_init__(self) -> None:
        self.path = Path(self.path)

    def open(self) -> HistoryWriter:
        self._file = self.path.open("w", encoding="utf-8")
        self._file.write(json.dumps(self.header.to_json(), separators=(",", ":")) + "\n")
        self._file.flush()
        return self

    def __enter__(self) -> HistoryWriter:
        return self.open()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def write(self, op: Operation) -> None:
        # The workloads share one call value among the tasks that ask for the same thing:
        # encode its fields once (keyed by identity; the cache holds the value, so an id is
        # never reused while it is cached).
        call = op.op
        hit = self._fields.get(id(call))
        if hit is None or hit[0] is not call:
            if len(self._fields) >= 4096:
                self._fields.clear()
            hit = self._fields[id(call)] = (call, call_fields(call))
        self._buffer.append(encode_operation(op, hit[1]))
        self.count += 1
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def write_many(self, ops: Iterable[Operation]) -> None:
        for op in ops:
            self.write(op)

    def write_round(self, round_index: int, *, flush: bool = True, **info: Any) -> None:
        """A per-round record, e.g. ``setup=1, race=16`` or ``problems=[...]``; flushed at
        once unless ``flush`` is False (then like an operation line)."""
        self._buffer.append(json.dumps({"round": round_index, **info}, separators=(",", ":")))
        if flush or len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if self._file is None:
            raise RuntimeError("HistoryWriter is not open")
        if self._buffer:
            self._file.write("\n".join(self._buffer) + "\n")
            self._buffer.clear()
        self._file.flush()
        if self.sync:
            os.fsync(self._file.fileno())

    def close(self, **trailer: Any) -> None:
        """Flush and close; a trailer line records the operation count (and ``trailer``)."""
        if self._file is None:
            return
        self._buffer.append(
            json.dumps({"end": {"operations": self.count, **trailer}}, separators=(",", ":"))
        )
        self.flush()
        self._file.close()
        self._file = None


def write_history(path: Path | str, header: Header, ops: Iterable[Operation]) -> int:
    """Write a whole history at once; returns the number of operations."""
    with HistoryWriter(Path(path), header) as writer:
        writer.write_many(ops)
        return writer.count


# The reader lives in `stress.history_reader`; its names are part of this module's API, loaded
# on first use (PEP 562) so that either module may be imported first.
_READER_NAMES = {
    "BATCH",
    "HistoryReader",
    "load_history",
    "parse_header",
    "parse_operation",
    "read_history",
}

if TYPE_CHECKING:
    from stress.history_reader import (
        BATCH,
        HistoryReader,
        load_history,
        parse_header,
        parse_operation,
        read_history,
    )


def __getattr__(name: str) -> Any:
    if name in _READER_NAMES:
        from stress import history_reader

        return getattr(history_reader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BATCH",
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "KINDS",
    "MIN_RESULT",
    "Header",
    "HistoryReader",
    "HistoryWriter",
    "Operation",
    "encode_operation",
    "host_kernel",
    "load_history",
    "parse_header",
    "parse_operation",
    "read_history",
    "write_history",
]
