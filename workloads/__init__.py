"""Declarative race workloads, expanded into per-task operation plans (imports `mm` only).

A `Workload` is a frozen value: op templates (setup, race, cleanup) relative to a per-round base
inside an arena (`Space`; or across a page-table `Boundary`), and `Grade`s that classify each
round's outcome; every round ends with a footprint check (`RoundPlan.check`). `Workload.plan(round,
tasks, space, seed)` is a pure, seeded function giving a `RoundPlan`. The catalog is built in;
users add their own as TOML files (`load_toml`, schema in docs/workloads.md).
"""

from __future__ import annotations

from workloads._catalog import CATALOG, DEFAULT
from workloads._model import (
    ACCEPTABLE,
    ANCHORS,
    COUNT_NAMES,
    FLAG_NAMES,
    FORBIDDEN,
    GRADE_VERDICTS,
    INTERESTING,
    PROBE_LABEL,
    Boundary,
    Grade,
    OpTemplate,
    RoundPlan,
    Space,
    Workload,
    check_workload,
    default_label,
    fact_names,
    format_span,
)
from workloads._spec_cases import OTHER, SpecCase, spec_cases
from workloads._toml import load_toml, parse_toml

__all__ = [
    "ACCEPTABLE",
    "ANCHORS",
    "COUNT_NAMES",
    "DEFAULT",
    "FLAG_NAMES",
    "FORBIDDEN",
    "GRADE_VERDICTS",
    "INTERESTING",
    "OTHER",
    "PROBE_LABEL",
    "Boundary",
    "Grade",
    "OpTemplate",
    "RoundPlan",
    "Space",
    "SpecCase",
    "Workload",
    "catalog",
    "check_workload",
    "default_label",
    "fact_names",
    "format_span",
    "get",
    "load_toml",
    "parse_toml",
    "spec_cases",
]


def catalog() -> dict[str, Workload]:
    """The built-in workloads by name, in catalog order (the first, `same-page`, is the default)."""
    return {w.name: w for w in CATALOG}


def get(name: str) -> Workload:
    """The catalog workload `name`; a path ending in `.toml` is loaded with `load_toml`.

    Raises ValueError("workload 'x': unknown; known: ...") for an unknown name.
    """
    if name.endswith(".toml"):
        return load_toml(name)
    found = catalog().get(name)
    if found is None:
        raise ValueError(f"workload {name!r}: unknown; known: {', '.join(catalog())}")
    return found
