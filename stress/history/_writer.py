"""Writing a history: a streaming JSON Lines writer (format: docs/history-format.md).

`HistoryWriter` streams the header at once and operations as they come, flushing every
`flush_every` lines, so a killed run loses at most one buffer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import attrs

from stress.history._record import Header, Operation

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
    ``sync``) every ``flush_every`` lines, at the first round record ``flush_seconds`` after
    the last flush (so that a reader following the file sees finished rounds soon), and on
    close.
    """

    path: Path
    header: Header
    flush_every: int = 4096
    sync: bool = False
    flush_seconds: float = 0.05
    count: int = 0
    _file: IO[str] | None = None
    _buffer: list[str] = attrs.Factory(list)
    _fields: dict[int, tuple[Any, str]] = attrs.Factory(dict)
    _flushed: float = 0.0

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
        once unless ``flush`` is False (then like an operation line, or when ``flush_seconds``
        have passed since the last flush)."""
        self._buffer.append(json.dumps({"round": round_index, **info}, separators=(",", ":")))
        if (
            flush
            or len(self._buffer) >= self.flush_every
            or time.monotonic() - self._flushed >= self.flush_seconds
        ):
            self.flush()

    def flush(self) -> None:
        if self._file is None:
            raise RuntimeError("HistoryWriter is not open")
        if self._buffer:
            self._file.write("\n".join(self._buffer) + "\n")
            self._buffer.clear()
        self._file.flush()
        self._flushed = time.monotonic()
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
