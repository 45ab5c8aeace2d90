"""Checker benchmarks: speed figures against targets, for ``mmrace bench``.

A benchmark is a function ``fn(repeat) -> list[Figure]`` registered under a name; `run` runs
some or all of them. The built-in one, ``porcupine``, times the engine on the Porcupine peer's
known-answer histories (and checks each verdict on the way: a wrong verdict fails the figure).
Other modules add theirs with `register`. Times are wall-clock medians of ``repeat`` runs.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from stress.checker import Event, Model, Verdict, check
from stress.errors import UsageError
from stress.selftest._figure import Figure
from stress.selftest.kv import KvModel
from stress.selftest.porcupine import ENV_VAR, default_data_dir, etcd_histories, kv_histories
from stress.selftest.register import RegisterModel

Bench = Callable[[int], list[Figure]]
_BENCHES: dict[str, Bench] = {}


def register(name: str, bench: Bench) -> None:
    """Make ``bench(repeat)`` available to `run` under ``name``."""
    _BENCHES[name] = bench


def available() -> list[str]:
    """Names of the registered benchmarks."""
    return sorted(_BENCHES)


def run(names: Sequence[str] | None = None, *, repeat: int = 3) -> list[Figure]:
    """Run the named benchmarks (all when None); unknown names raise `UsageError`."""
    chosen = available() if not names else list(names)
    for name in chosen:
        if name not in _BENCHES:
            raise UsageError(f"bench {name!r}: unknown (choose from {', '.join(available())})")
    if repeat < 1:
        raise UsageError(f"--repeat {repeat}: must be at least 1")
    figures: list[Figure] = []
    for name in chosen:
        figures.extend(_BENCHES[name](repeat))
    return figures


def format_table(figures: Sequence[Figure]) -> str:
    """A plain-text table of figures."""
    rows = [("figure", "value", "target", "ok", "note")]
    for f in figures:
        target = "" if f.target is None else f"{f.target:g} {f.unit}"
        rows.append((f.name, f"{f.value:.3f} {f.unit}", target, "yes" if f.ok else "NO", f.note))
    widths = [max(len(row[k]) for row in rows) for k in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    )


def _timed(repeat: int, work: Callable[[], bool]) -> tuple[float, bool]:
    """Median seconds of ``repeat`` runs of ``work``, and whether every run returned True."""
    times, right = [], True
    for _ in range(repeat):
        start = time.perf_counter()
        right = work() and right
        times.append(time.perf_counter() - start)
    return statistics.median(times), right


def _figure(
    name: str, seconds: float, right: bool, target: float | None, note: str, strict: bool = False
) -> Figure:
    met = target is None or (seconds < target if strict else seconds <= target)
    verdict_note = "" if right else "WRONG VERDICT; "
    return Figure(name, seconds, "s", target, right and met, verdict_note + note)


def _verdict_ok(model: Model, events: list[Event], expected_ok: bool, partitioned: bool) -> bool:
    result = check(model, events, partitioned=partitioned, workers=1)
    return result.verdict is (Verdict.OK if expected_ok else Verdict.VIOLATION)


def bench_porcupine(data_dir: Path | None = None, *, repeat: int = 3) -> list[Figure]:
    """Figures on the Porcupine data (etcd register, kv store); peer figures in the notes."""
    data = default_data_dir() if data_dir is None else data_dir
    if not (data / "README.md").is_file():
        raise UsageError(f"porcupine data: not found at {data} (set ${ENV_VAR} to its folder)")
    register_model, kv_model = RegisterModel(), KvModel()
    etcd = etcd_histories(data)
    kv = {name: (events, ok) for name, events, ok in kv_histories(data)}
    figures: list[Figure] = []

    seconds, right = _timed(
        repeat, lambda: all([_verdict_ok(register_model, e, ok, True) for _, e, ok in etcd])
    )
    figures.append(
        _figure(
            f"etcd: all {len(etcd)} histories",
            seconds,
            right,
            1.0,
            "Porcupine (Go) 0.47 s; Python port 1.8 s",
        )
    )
    for name, peer in (("c10-ok", "2.6"), ("c10-bad", "2.9")):
        events, ok = kv[name]
        seconds, right = _timed(repeat, functools.partial(_verdict_ok, kv_model, events, ok, False))
        figures.append(
            _figure(
                f"kv {name}, unpartitioned",
                seconds,
                right,
                2.5,
                f"{len(events)} ops; Porcupine {peer} s; Python port 2.6 s",
            )
        )
    for name, target, peer in (("c50-bad", 1.0, "0.036"), ("c50-ok", None, "0.20")):
        events, ok = kv[name]
        seconds, right = _timed(repeat, functools.partial(_verdict_ok, kv_model, events, ok, True))
        what = "violation found" if not ok else "linearizable"
        figures.append(
            _figure(
                f"kv {name}, partitioned: {what}",
                seconds,
                right,
                target,
                f"{len(events)} ops; Porcupine {peer} s",
                strict=True,
            )
        )
    return figures


def _porcupine(repeat: int) -> list[Figure]:
    return bench_porcupine(repeat=repeat)


register("porcupine", _porcupine)

__all__ = [
    "Figure",
    "available",
    "bench_porcupine",
    "format_table",
    "register",
    "run",
]
