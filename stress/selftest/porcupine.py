"""Readers for the Porcupine checker's known-answer histories (the peer's test data).

The data stays outside the project (``../shared/data/porcupine`` beside the checkout, or the
directory named by ``$MMRACE_PORCUPINE_DATA``); see its README for the formats. Times are line
numbers. Malformed lines raise `UsageError` naming file:line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from stress.checker import Event
from stress.errors import UsageError
from stress.selftest.kv import APPEND, GET, PUT
from stress.selftest.register import CAS, READ, UNKNOWN, WRITE

ENV_VAR = "MMRACE_PORCUPINE_DATA"

_ETCD = re.compile(
    r"^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*?)\s*$"
)
_CAS_VALUE = re.compile(r"^\[(\d+)\s+(\d+)\]$")
_KV = re.compile(
    r'^\{:process (\d+), :type :(invoke|ok), :f :(get|put|append), :key "([^"]*)", '
    r':value (nil|"[^"]*")\}$'
)


def default_data_dir() -> Path:
    """``$MMRACE_PORCUPINE_DATA``, else ``shared/data/porcupine`` beside the project checkout."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "porcupine"


def parse_etcd_log(path: Path) -> list[Event]:
    """A Jepsen etcd log as register events (calls still open at the end are pending)."""
    events: list[Event] = []
    open_calls: dict[int, tuple[tuple[object, ...], int]] = {}
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        found = _ETCD.match(line)
        if found is None:
            continue  # noise
        where = f"{path}:{number}"
        process, kind, f, value = int(found[1]), found[2], found[3], found[4]
        if kind == "info":
            continue  # crashed client: its call stays open, result unknown
        if kind == "invoke":
            if process in open_calls:
                raise UsageError(f"{where}: process {process} invokes with a call still open")
            open_calls[process] = (_etcd_input(where, f, value), number)
            continue
        if process not in open_calls:
            raise UsageError(f"{where}: process {process} responds without an open call")
        input, call = open_calls.pop(process)
        if input[0] != f:
            raise UsageError(f"{where}: response :{f} to a :{input[0]} call")
        output: object
        if f == READ:
            if kind == "fail" and value == ":timed-out":
                output = UNKNOWN
            elif kind == "ok":
                output = None if value == "nil" else _int(where, value)
            else:
                raise UsageError(f"{where}: unexpected read response {kind} {value}")
        elif f == WRITE:
            if kind != "ok":
                raise UsageError(f"{where}: unexpected write response {kind} {value}")
            output = None
        else:
            output = kind == "ok"
        events.append(Event(process, input, output, call, number))
    for process, (input, call) in open_calls.items():
        events.append(Event(process, input, None, call, None))
    return events


def _etcd_input(where: str, f: str, value: str) -> tuple[object, ...]:
    if f == READ:
        return (READ,)
    if f == WRITE:
        return (WRITE, _int(where, value))
    found = _CAS_VALUE.match(value)
    if found is None:
        raise UsageError(f"{where}: cas value {value!r} is not [FROM TO]")
    return (CAS, int(found[1]), int(found[2]))


def _int(where: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{where}: {text!r} is not an integer") from None


def parse_kv_log(path: Path) -> list[Event]:
    """A Porcupine kv log (get / put / append on string keys) as kv events."""
    events: list[Event] = []
    open_calls: dict[int, tuple[tuple[str, str, str | None], int]] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        found = _KV.match(line)
        if found is None:
            raise UsageError(f"{where}: not a kv operation line")
        process, kind, f, key, raw = int(found[1]), found[2], found[3], found[4], found[5]
        value = None if raw == "nil" else raw[1:-1]
        if kind == "invoke":
            if process in open_calls:
                raise UsageError(f"{where}: process {process} invokes with a call still open")
            stored = value if f in (PUT, APPEND) else None
            open_calls[process] = ((f, key, stored), number)
            continue
        if process not in open_calls:
            raise UsageError(f"{where}: process {process} responds without an open call")
        input, call = open_calls.pop(process)
        if input[:2] != (f, key):
            raise UsageError(f"{where}: response does not match the open :{input[0]} call")
        output = (value or "") if f == GET else None
        events.append(Event(process, input, output, call, number))
    for process, (input, call) in open_calls.items():
        events.append(Event(process, input, None, call, None))
    return events


_LINEARIZABLE = re.compile(r"Linearizable:\s*((?:\d+\s+)*\d+)\s*\.")
_OTHERS = re.compile(r"from\s+(\d+)\s+to\s+(\d+)\s*\(except\s+([\d\s,]+)\)\s+is\s+NOT")


def etcd_verdicts(data_dir: Path) -> dict[str, bool]:
    """Known verdicts from the data's README: history name (``etcd_002``) -> linearizable."""
    readme = data_dir / "README.md"
    text = " ".join(readme.read_text().split())
    good, others = _LINEARIZABLE.search(text), _OTHERS.search(text)
    if good is None or others is None:
        raise UsageError(f"{readme}: cannot find the etcd verdict list")
    linearizable = {int(n) for n in good[1].split()}
    excluded = {int(n) for n in re.split(r"[\s,]+", others[3].strip())}
    return {
        f"etcd_{k:03d}": k in linearizable
        for k in range(int(others[1]), int(others[2]) + 1)
        if k not in excluded
    }


def etcd_histories(data_dir: Path) -> list[tuple[str, list[Event], bool]]:
    """Every etcd history with a known verdict: (name, events, linearizable)."""
    return [
        (name, parse_etcd_log(data_dir / "etcd" / f"{name}.log"), ok)
        for name, ok in sorted(etcd_verdicts(data_dir).items())
    ]


def kv_histories(data_dir: Path) -> list[tuple[str, list[Event], bool]]:
    """Every kv history: (name such as ``c10-ok``, events, linearizable from the ``-ok`` suffix)."""
    found = []
    for path in sorted((data_dir / "kv").glob("c*-*.txt")):
        if path.stem.endswith(("-ok", "-bad")):
            found.append((path.stem, parse_kv_log(path), path.stem.endswith("-ok")))
    return found
