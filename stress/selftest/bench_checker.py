"""Checker benchmarks: speed figures against targets, for ``mmrace bench``.

A benchmark is a function ``fn(repeat) -> list[Figure]`` registered under a name; `run` runs
some or all of them. The built-in one, ``porcupine``, times the engine on the Porcupine peer's
known-answer histories (and checks each verdict on the way: a wrong verdict fails the figure).
Other modules add theirs with `register`. Times are wall-clock medians of ``repeat`` runs.
Beside each figure the note gives the peer's figure and the ratio (ours / the peer's): the
peer's newest figures are read from the data's README (`PEER_SOURCE`); they were measured on
the same kind of machine, not in the same minutes, so a side-by-side run is the fairer ratio.
"""

from __future__ import annotations

import functools
import re
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
    """Median CPU seconds of ``repeat`` runs of ``work``, and whether every run returned True.

    CPU time, not wall time: the checks run in this process (one worker), and on a shared
    machine the wall clock measures the neighbours as much as the checker."""
    times, right = [], True
    for _ in range(repeat):
        start = time.process_time()
        right = work() and right
        times.append(time.process_time() - start)
    return statistics.median(times), right


def _figure(
    name: str, seconds: float, right: bool, target: float | None, note: str, strict: bool = False
) -> Figure:
    met = target is None or (seconds < target if strict else seconds <= target)
    verdict_note = "" if right else "WRONG VERDICT; "
    return Figure(name, seconds, "s", target, right and met, verdict_note + "CPU time; " + note)


def _verdict_ok(model: Model, events: list[Event], expected_ok: bool, partitioned: bool) -> bool:
    result = check(model, events, partitioned=partitioned, workers=1)
    return result.verdict is (Verdict.OK if expected_ok else Verdict.VIOLATION)


_RANGE = r"([\d.]+)(?:[–-][\d.]+)?\s*s"
_PEER_ROWS = {
    "etcd": re.compile(r"\|\s*all 102 etcd histories\s*\|\s*" + _RANGE),
    "c50": re.compile(r"\|\s*kv c50-ok / c50-bad[^|]*\|\s*" + _RANGE + r"\s*/\s*" + _RANGE),
    "c10": re.compile(r"\|\s*kv c10-ok / c10-bad[^|]*\|\s*" + _RANGE + r"\s*/\s*" + _RANGE),
}
PEER_SOURCE = "Porcupine (Go, newest, state hashing) as measured in the data's README"


def peer_figures(data_dir: Path) -> dict[str, float]:
    """The peer's newest figures (seconds, the low end of each range) from the data's README,
    section "Measured again": keys ``etcd``, ``c50-ok``, ``c50-bad``, ``c10-ok``, ``c10-bad``;
    missing ones are left out."""
    try:
        text = (data_dir / "README.md").read_text()
    except OSError:
        return {}
    start = text.find("## Measured again")
    if start < 0:
        return {}
    text = text[start:]
    found: dict[str, float] = {}
    if m := _PEER_ROWS["etcd"].search(text):
        found["etcd"] = float(m[1])
    for size in ("c50", "c10"):
        if m := _PEER_ROWS[size].search(text):
            found[f"{size}-ok"], found[f"{size}-bad"] = float(m[1]), float(m[2])
    return found


def _peer_note(seconds: float, peer: float | None) -> str:
    if peer is None:
        return "no peer figure"
    return f"peer {peer:g} s, ratio {seconds / peer:.2f}"


# Targets (seconds): ahead of the peer on etcd; the kv figures as the issue asks.
TARGETS = {"c10-ok": 1.0, "c10-bad": 1.5, "c50-ok": 0.2, "c50-bad": 0.035}


def bench_porcupine(data_dir: Path | None = None, *, repeat: int = 3) -> list[Figure]:
    """Figures on the Porcupine data (etcd register, kv store), each with the peer's figure
    (`peer_figures`) and our time divided by it in the note."""
    data = default_data_dir() if data_dir is None else data_dir
    if not (data / "README.md").is_file():
        raise UsageError(f"porcupine data: not found at {data} (set ${ENV_VAR} to its folder)")
    register_model, kv_model = RegisterModel(), KvModel()
    etcd = etcd_histories(data)
    kv = {name: (events, ok) for name, events, ok in kv_histories(data)}
    peers = peer_figures(data)
    figures: list[Figure] = []

    seconds, right = _timed(
        repeat, lambda: all([_verdict_ok(register_model, e, ok, True) for _, e, ok in etcd])
    )
    peer = peers.get("etcd")
    figures.append(
        _figure(
            f"etcd: all {len(etcd)} histories",
            seconds,
            right,
            peer,
            _peer_note(seconds, peer) + " (target: the peer's)",
            strict=True,
        )
    )
    for name in ("c10-ok", "c10-bad"):
        events, ok = kv[name]
        seconds, right = _timed(repeat, functools.partial(_verdict_ok, kv_model, events, ok, False))
        figures.append(
            _figure(
                f"kv {name}, unpartitioned",
                seconds,
                right,
                TARGETS[name],
                f"{len(events)} ops; {_peer_note(seconds, peers.get(name))}",
            )
        )
    for name in ("c50-bad", "c50-ok"):
        events, ok = kv[name]
        seconds, right = _timed(repeat, functools.partial(_verdict_ok, kv_model, events, ok, True))
        what = "violation found" if not ok else "linearizable"
        figures.append(
            _figure(
                f"kv {name}, partitioned: {what}",
                seconds,
                right,
                TARGETS[name],
                f"{len(events)} ops; {_peer_note(seconds, peers.get(name))}",
            )
        )
    return figures


def _porcupine(repeat: int) -> list[Figure]:
    """The Porcupine figures, or one skipped figure saying why when the known-answer data is
    not there (an installed mmrace without the project's ../shared data)."""
    data = default_data_dir()
    if not (data / "README.md").is_file():
        note = (
            f"skipped: the Porcupine known-answer data is not at {data} "
            f"(set ${ENV_VAR} to its folder to measure these figures)"
        )
        return [Figure("porcupine (known-answer histories)", 0.0, "s", None, True, note, True)]
    return bench_porcupine(data, repeat=repeat)


register("porcupine", _porcupine)

__all__ = [
    "PEER_SOURCE",
    "Figure",
    "available",
    "bench_porcupine",
    "format_table",
    "peer_figures",
    "register",
    "run",
]
