"""Loaders of the files the report reads besides a run directory: sweep.json, mutants.json.

Every malformed input is a `stress.errors.UsageError` naming the file (and key) and the problem.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plots.data import MutantResult, SweepData, SweepPoint
from stress.errors import UsageError

SWEEP_FILE = "sweep.json"
MUTANTS_FILE = "mutants.json"
SWEEP_KEY = "mmrace_sweep"
MUTANTS_KEY = "mmrace_mutants"
FORMAT_VERSION = 1


def read_json(path: Path) -> Any:
    """A JSON file's value; a missing file or bad JSON is a UsageError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}: bad JSON: {exc}") from None


def field(d: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``d[key]`` checked against ``kind`` (bool is not an int); else a UsageError."""
    if not isinstance(d, dict):
        raise UsageError(f"{where}: expected a JSON object")
    if key not in d:
        raise UsageError(f"{where}: missing key {key!r}")
    value = d[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise UsageError(f"{where}: {key!r} has the wrong type: {json.dumps(value)}")
    if not isinstance(value, kinds):
        raise UsageError(f"{where}: {key!r} has the wrong type: {json.dumps(value)}")
    return value


# --- sweeps ------------------------------------------------------------------------------------


def sweep_to_json(sweep: SweepData, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON value of sweep.json (see docs/plots.md)."""
    return {
        SWEEP_KEY: FORMAT_VERSION,
        "workload": sweep.workload,
        "target": sweep.target,
        "seed": sweep.seed,
        "points": [
            {
                "tasks": p.tasks,
                "rounds": p.rounds,
                "operations": p.operations,
                "seconds": p.seconds,
                "overlap_ratio": p.overlap_ratio,
                "probes": p.probes,
                "lost": p.lost,
                "verdict": p.verdict,
                "throughput": p.throughput,
                "repeats": p.repeats,
                "clock": p.clock,
                "latency_percentiles": [list(v) for v in p.latency_percentiles],
            }
            for p in sweep.points
        ],
        **(extra or {}),
    }


def load_sweep(path: Path) -> SweepData:
    """Read sweep.json."""
    d = read_json(path)
    where = str(path)
    if not isinstance(d, dict) or d.get(SWEEP_KEY) != FORMAT_VERSION:
        raise UsageError(f"{where}: not an mmrace sweep file (no {SWEEP_KEY!r}: 1)")
    points = []
    for i, p in enumerate(field(d, "points", list, where)):
        at = f"{where}: points[{i}]"
        points.append(
            SweepPoint(
                tasks=field(p, "tasks", int, at),
                rounds=field(p, "rounds", int, at),
                operations=field(p, "operations", int, at),
                seconds=float(field(p, "seconds", (int, float), at)),
                overlap_ratio=float(field(p, "overlap_ratio", (int, float), at)),
                probes=field(p, "probes", int, at),
                lost=field(p, "lost", int, at),
                verdict=field(p, "verdict", str, at),
                latency_percentiles=_percentiles(p.get("latency_percentiles"), at),
                clock=str(p.get("clock", "ns")),
                repeats=int(p.get("repeats", 1)),
            )
        )
    return SweepData(
        workload=field(d, "workload", str, where),
        target=field(d, "target", str, where),
        seed=field(d, "seed", int, where),
        points=tuple(points),
    )


def _percentiles(data: Any, where: str) -> tuple[tuple[float, float, float], ...]:
    """A point's per-repeat (p50, p90, p99); absent in sweeps written before repeats."""
    if data is None:
        return ()
    ok = isinstance(data, list) and all(
        isinstance(v, list)
        and len(v) == 3
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v)
        for v in data
    )
    if not ok:
        raise UsageError(f"{where}: 'latency_percentiles' must be a list of [p50, p90, p99]")
    return tuple((float(v[0]), float(v[1]), float(v[2])) for v in data)


# --- mutants -----------------------------------------------------------------------------------


def mutants_to_json(results: tuple[MutantResult, ...]) -> dict[str, Any]:
    """The JSON value of a mutants results file (see docs/plots.md)."""
    return {
        MUTANTS_KEY: FORMAT_VERSION,
        "results": [
            {
                "variant": r.variant,
                "strategy": r.strategy,
                "rounds": r.rounds,
                "detected_at": r.detected_at,
            }
            for r in results
        ],
    }


def load_mutants(path: Path) -> tuple[MutantResult, ...]:
    """Read a mutants results file (written by `mmrace mutants`)."""
    d = read_json(path)
    where = str(path)
    if not isinstance(d, dict) or d.get(MUTANTS_KEY) != FORMAT_VERSION:
        raise UsageError(f"{where}: not an mmrace mutants file (no {MUTANTS_KEY!r}: 1)")
    out = []
    for i, r in enumerate(field(d, "results", list, where)):
        at = f"{where}: results[{i}]"
        out.append(
            MutantResult(
                variant=field(r, "variant", str, at),
                strategy=field(r, "strategy", str, at),
                rounds=field(r, "rounds", int, at),
                detected_at=field(r, "detected_at", (int, type(None)), at),
            )
        )
    return tuple(out)
