"""Benchmark hook for `mmrace bench harness`: kernel-target race rounds/s against a bare C loop.

Every side races the same round — every thread asks for the same page with
MAP_FIXED_NOREPLACE, then one thread unmaps it — in this process, one after the other:
- bare: `native/bare.c` (shipped beside this module, built into the per-user cache on first
  use): N pthreads released by the racer's own gate (`stress/harness/native/gate.h`), each
  calls mmap once, the releaser unmaps the page; nothing recorded, nothing checked;
- native: a real run (`stress.harness.execute`, the runner `mmrace run` uses, recording to a
  temporary history) of `KernelTarget(engine="native")` on that round (the same-page workload
  without its footprint check, in a one-page arena): the runner hands the target batches of
  rounds (`run_rounds`: many rounds per C call, sized to about 1.5 ms; the C racer's gate, call
  and return stamps, arena fence, the interference check before and after each batch,
  `Operation` records);
- python: the same run with `engine="python"` (the `WorkerPool` threads, a round at a time).
The three alternate `repeats` times; the figure is the median of the paired ratios native
rounds/s / bare rounds/s (target: at least 0.5). The targets' time is the runner's "target"
phase (inside the target's calls; planning, history lines and round records are left out). Each
note also gives, for both engines, the share of rounds with all N calls in flight at one
instant and the winners' fairness: Jain's index over the tasks' win counts (1 = every task won
equally often, 1/N = one task won everything) and the top task's share of the wins.
"""

from __future__ import annotations

import ctypes
import os
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

import workloads
from mm import kernel as k
from stress.harness import (
    KernelTarget,
    NativeUnavailable,
    RoundLog,
    RunConfig,
    RunStats,
    TargetOptions,
    build_native,
    execute,
)
from stress.selftest._figure import Figure
from workloads import Space

RATIO_TARGET = 0.5
BARE_SOURCE = Path(__file__).resolve().parent / "native" / "bare.c"


@attrs.frozen
class Side:
    """One timed run: rounds/s, share of rounds with all calls in flight, wins per task."""

    rate: float
    all_in_flight: float
    wins: tuple[int, ...]


def jain(wins: Sequence[int]) -> float:
    """Jain's fairness index of the win counts: (sum x)^2 / (n * sum x^2)."""
    total, squares = sum(wins), sum(w * w for w in wins)
    return total * total / (len(wins) * squares) if squares else 0.0


def top_share(wins: Sequence[int]) -> float:
    return max(wins) / sum(wins) if sum(wins) else 0.0


def bare_loop(threads: int, base: int, seconds: float) -> Side:
    """The bare C loop (see the module docstring)."""
    lib = ctypes.CDLL(str(build_native("bare", BARE_SOURCE)))
    lib.mmr_bare.restype = ctypes.c_int
    lib.mmr_bare.argtypes = [
        ctypes.c_int,
        ctypes.c_uint64,
        ctypes.c_uint64,
        ctypes.c_double,
        ctypes.c_void_p,
    ]
    out = (ctypes.c_int64 * (4 + threads))()
    if lib.mmr_bare(threads, base, k.page_size(), seconds, out) != 0:
        raise NativeUnavailable(f"the bare loop could not start {threads} threads")
    rounds, elapsed, full, nobody = out[0], out[1], out[2], out[3]
    if nobody:
        raise RuntimeError(f"bare loop: the page at {base:#x} was busy in {nobody} rounds")
    return Side(rounds / (elapsed / 1e9), full / max(rounds, 1), tuple(out[4:]))


# every task NOREPLACE-maps the page, then one munmap: the bare loop's round
BENCH_PAGE = attrs.evolve(workloads.get("same-page"), name="bench-page", footprint_check=False)


async def target_side(threads: int, base: int, seconds: float, engine: str) -> Side:
    """Rounds/s of the kernel target with `engine` in a real run, all-in-flight share, wins."""
    page = k.page_size()
    raced = 0
    wins = [0] * threads

    def on_round(stats: RunStats, log: RoundLog) -> None:
        nonlocal raced
        raced += log.race.overlapped
        for rec in log.race.records:
            if rec.result == base:
                wins[rec.task] += 1

    options = TargetOptions(spec="kernel", engine=engine)
    target = KernelTarget(options)
    with tempfile.TemporaryDirectory(prefix="mmrace-bench-") as tmp:
        config = RunConfig(
            BENCH_PAGE,
            BENCH_PAGE.name,
            options,
            threads,
            None,
            seconds,
            Path(tmp),
            Space(base, page, page),
        )
        stats = await execute(config, target, on_round=on_round)
    if target.engine != engine:
        raise NativeUnavailable(target.note or f"engine {engine} unavailable")
    if stats.problems:
        raise RuntimeError(f"kernel bench ({engine}): {stats.problems[0]}")
    busy = stats.phases["target"]
    rounds = stats.rounds
    return Side(rounds / busy if busy else 0.0, raced / max(rounds, 1), tuple(wins))


def _medians(sides: Sequence[Side], n: int) -> str:
    rate = statistics.median(s.rate for s in sides)
    full = statistics.median(s.all_in_flight for s in sides)
    return f"{rate:.0f} rounds/s, all {n} in flight {full:.0%}"


def _fairness(sides: Sequence[Side]) -> str:
    wins = [sum(col) for col in zip(*(s.wins for s in sides), strict=True)]
    return f"Jain {jain(wins):.2f}, top task {top_share(wins):.0%} of wins"


def bench_kernel(
    threads: Sequence[int] = (2, 4, 8, 16),
    seconds: float = 0.3,
    repeats: int = 5,
    base: int = k.FAR_BASE,
) -> list[Figure]:
    """The figures for `mmrace bench harness` (Linux only; 3 x repeats x seconds per count).

    Bare loop, native and python engines alternate `repeats` times; each figure is the median
    of the paired ratios native / bare (medians of each side, shares and fairness in the note)."""
    arena = k.Arena.reserve(1 << 30, base)  # verifies the page is free
    arena.release()
    try:
        build_native("bare", BARE_SOURCE)
        build_native("racer")
    except NativeUnavailable as exc:
        return [Figure("kernel target, native engine", 0, "ratio", RATIO_TARGET, False, str(exc))]
    figures = []
    for n in threads:
        bares: list[Side] = []
        natives: list[Side] = []
        pythons: list[Side] = []
        for _ in range(repeats):
            bares.append(bare_loop(n, base, seconds))
            natives.append(trio.run(target_side, n, base, seconds, "native"))
            pythons.append(trio.run(target_side, n, base, seconds, "python"))
        ratio = statistics.median(s.rate / b.rate for s, b in zip(natives, bares, strict=True))
        py_ratio = statistics.median(s.rate / b.rate for s, b in zip(pythons, bares, strict=True))

        figures.append(
            Figure(
                f"kernel target, {n} threads: native engine rounds/s vs bare C loop",
                round(ratio, 3),
                "ratio",
                RATIO_TARGET,
                ratio >= RATIO_TARGET,
                f"native {_medians(natives, n)}, {_fairness(natives)}; "
                f"python {_medians(pythons, n)} (ratio {py_ratio:.2f}), {_fairness(pythons)}; "
                f"bare C {_medians(bares, n)} "
                f"(medians of {repeats}); load average {os.getloadavg()[0]:.1f} on "
                f"{os.cpu_count()} CPUs",
            )
        )
    return figures


if __name__ == "__main__":
    for fig in bench_kernel():
        print(f"{fig.name}: {fig.value} {fig.unit} (target {fig.target}, ok={fig.ok}) {fig.note}")
