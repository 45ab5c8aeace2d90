"""User workloads from TOML files, validated against the schema in docs/workloads.md.

Every problem is reported as ``ValueError("path: key 'race[0].flags': problem")`` so the CLI can
print it as one line. A loaded file gives the same `Workload` class as the built-in catalog.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import mm
from workloads import _expr
from workloads._model import (
    ANCHORS,
    GRADE_VERDICTS,
    Boundary,
    Expr,
    Grade,
    OpTemplate,
    Workload,
    check_workload,
)

_TOP_KEYS = {
    "name",
    "summary",
    "shuffle",
    "setup",
    "race",
    "cleanup",
    "grades",
    "boundary",
    "footprint_check",
}
_BOUNDARY_KEYS = {"spans", "at"}
_SIZE = re.compile(r"\s*(\d+)\s*(KiB|MiB|GiB|TiB)?\s*\Z")
_UNITS = {None: 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
_OP_KEYS = {"kind", "offset", "pages", "prot", "flags", "anchor", "tasks", "label"}
_GRADE_KEYS = {"verdict", "when", "description"}
_LABEL = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")
_TASK_NAMES = {"task", "tasks"}


class _Problem(Exception):
    """A schema problem at `key` (raised internally; turned into ValueError with the path)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(key, problem)
        self.key = key
        self.problem = problem


def load_toml(path: str | Path) -> Workload:
    """Read and validate a workload file; raises ValueError("path: key 'k': problem")."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not a TOML file (not UTF-8 text: byte {exc.start} is "
            f"{exc.object[exc.start]:#04x})"
        ) from None
    return parse_toml(text, str(path))


def parse_toml(text: str, source: str = "<string>") -> Workload:
    """Parse workload TOML `text` (`source` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ValueError(f"{source}: invalid TOML: nested too deeply") from None
    try:
        workload = _workload(data)
    except _Problem as exc:
        raise ValueError(f"{source}: key '{exc.key}': {exc.problem}") from None
    try:
        check_workload(workload)
    except ValueError as exc:
        key, _, problem = str(exc).partition(": ")
        raise ValueError(f"{source}: key '{key}': {problem}") from None
    return workload


def _workload(data: dict[str, Any]) -> Workload:
    _no_unknown(data, _TOP_KEYS, "")
    name = _string(data, "name", "", required=True)
    summary = _string(data, "summary", "", required=True)
    shuffle = data.get("shuffle", False)
    if not isinstance(shuffle, bool):
        raise _Problem("shuffle", "must be true or false")
    check = data.get("footprint_check", True)
    if not isinstance(check, bool):
        raise _Problem("footprint_check", "must be true or false")
    race = _templates(data, "race", required=True)
    setup = _templates(data, "setup")
    cleanup = _templates(data, "cleanup") if "cleanup" in data else None
    grades = _grades(data)
    boundary = _boundary(data["boundary"]) if "boundary" in data else None
    return Workload(name, summary, race, grades, setup, cleanup, shuffle, boundary, check)


def _boundary(table: Any) -> Boundary:
    """[boundary]: spans (sizes: integers of bytes or "2MiB"-style strings), at (page numbers)."""
    if not isinstance(table, dict):
        raise _Problem("boundary", "must be a table ([boundary])")
    _no_unknown(table, _BOUNDARY_KEYS, "boundary.")
    if "spans" not in table:
        raise _Problem("boundary.spans", "missing")
    spans = tuple(
        _size(v, f"boundary.spans[{i}]") for i, v in enumerate(_list(table["spans"], "spans"))
    )
    at_value = table.get("at", 0)
    at_items = at_value if isinstance(at_value, list) else [at_value]
    at = []
    for i, item in enumerate(_list(at_items, "at")):
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            key = "boundary.at" if not isinstance(at_value, list) else f"boundary.at[{i}]"
            raise _Problem(key, "must be a page number (an integer >= 0) or a list of them")
        at.append(item)
    return Boundary(spans, tuple(at))


def _list(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _Problem(f"boundary.{key}", "must be a non-empty list")
    return value


def _size(value: Any, key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    found = _SIZE.match(value) if isinstance(value, str) else None
    if found is None:
        raise _Problem(key, 'must be a size: bytes, or a string like "2MiB", "1GiB", "512GiB"')
    return int(found.group(1)) * _UNITS[found.group(2)]


def _no_unknown(table: dict[str, Any], known: set[str], prefix: str) -> None:
    for key in table:
        if key not in known:
            raise _Problem(f"{prefix}{key}", f"unknown key (known: {', '.join(sorted(known))})")


def _string(table: dict[str, Any], key: str, prefix: str, *, required: bool = False) -> str:
    if key not in table:
        if required:
            raise _Problem(f"{prefix}{key}", "missing")
        return ""
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        raise _Problem(f"{prefix}{key}", "must be a non-empty string")
    return value


def _tables(data: dict[str, Any], key: str, *, required: bool = False) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _Problem(key, f"must be an array of tables ([[{key}]])")
    if required and not value:
        raise _Problem(key, "needs at least one entry")
    return value


def _templates(
    data: dict[str, Any], group: str, *, required: bool = False
) -> tuple[OpTemplate, ...]:
    return tuple(
        _template(table, f"{group}[{i}].", race=group == "race")
        for i, table in enumerate(_tables(data, group, required=required))
    )


def _template(table: dict[str, Any], prefix: str, *, race: bool) -> OpTemplate:
    known = _OP_KEYS if race else _OP_KEYS - {"tasks"}
    _no_unknown(table, known, prefix)
    kind = _string(table, "kind", prefix, required=True)
    if kind not in mm.KINDS:
        raise _Problem(f"{prefix}kind", f"unknown kind {kind!r} (mmap, munmap, mprotect)")
    offset = _expr_value(table.get("offset", 0), f"{prefix}offset")
    pages = _expr_value(table.get("pages", 1), f"{prefix}pages")
    prot = _names(table, "prot", prefix, mm.parse_prot, mm.PROT_READ | mm.PROT_WRITE)
    if "flags" in table and kind != "mmap":
        raise _Problem(f"{prefix}flags", f"only mmap takes flags, not {kind}")
    flags = _names(table, "flags", prefix, mm.parse_flags, mm.NR)
    anchor = table.get("anchor", "round")
    if anchor not in ANCHORS:
        raise _Problem(f"{prefix}anchor", f"unknown anchor {anchor!r} ({', '.join(ANCHORS)})")
    selector = table.get("tasks", "true")
    if isinstance(selector, bool):
        selector = "true" if selector else "false"
    if not isinstance(selector, str):
        raise _Problem(f"{prefix}tasks", "must be an expression string like 'task % 2 == 0'")
    _check_task_expr(selector, f"{prefix}tasks")
    label = table.get("label")
    if label is not None and (not isinstance(label, str) or not _LABEL.match(label)):
        raise _Problem(f"{prefix}label", "must be letters and digits, starting with a letter")
    return OpTemplate(kind, offset, pages, prot, flags, anchor, selector, label)


def _expr_value(value: Any, key: str) -> Expr:
    if isinstance(value, bool):
        raise _Problem(key, "must be an integer, an expression string or a list of those")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        _check_task_expr(value, key)
        return value
    if isinstance(value, list) and value:
        items: list[int | str] = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise _Problem(f"{key}[{i}]", "must be an integer or an expression string")
            if isinstance(item, str):
                _check_task_expr(item, f"{key}[{i}]")
            items.append(item)
        return tuple(items)
    raise _Problem(key, "must be an integer, an expression string or a non-empty list of those")


def _check_task_expr(text: str, key: str) -> None:
    try:
        unknown = _expr.names(text) - _TASK_NAMES
    except ValueError as exc:
        raise _Problem(key, str(exc)) from None
    if unknown:
        raise _Problem(key, f"unknown name(s) {', '.join(sorted(unknown))} (use task, tasks)")


def _names(table: dict[str, Any], key: str, prefix: str, parse: Any, default: int) -> int:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < 1 << 64:
            raise _Problem(f"{prefix}{key}", f"must be from 0 to 2^64 - 1, got {value}")
        return value
    if not isinstance(value, str):
        raise _Problem(f"{prefix}{key}", "must be a string like 'READ|WRITE' or an integer")
    try:
        return int(parse(value))
    except ValueError as exc:
        raise _Problem(f"{prefix}{key}", str(exc)) from None


def _grades(data: dict[str, Any]) -> tuple[Grade, ...]:
    grades = []
    for i, table in enumerate(_tables(data, "grades", required=True)):
        prefix = f"grades[{i}]."
        _no_unknown(table, _GRADE_KEYS, prefix)
        verdict = _string(table, "verdict", prefix, required=True).upper()
        if verdict not in GRADE_VERDICTS:
            raise _Problem(f"{prefix}verdict", f"must be one of {', '.join(GRADE_VERDICTS)}")
        when = _string(table, "when", prefix, required=True)
        description = _string(table, "description", prefix, required=True)
        grades.append(Grade(verdict, when, description))
    return tuple(grades)
