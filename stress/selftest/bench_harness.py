"""`mmrace bench harness`: how fast the harness races and records, and what it costs in memory.

Figures (median of `repeat` runs): the model target with 64 tasks on the same-page race,
recording to a history file, under trio's own scheduling and under the controlled scheduler
(random, pct); plug-ins under the controlled scheduler (the locked page-dict plug-ins of
`stress.selftest.lockfree`, 8 tasks: sync on traced threads, a preemption point at every line,
and async as controlled coroutines); the bytes a recorded call occupies in memory while its
round runs, and the resident-memory growth per operation over a whole run (streaming keeps it
near zero); the kernel target's rounds/s in a real run (the runner's batches of rounds per C
call) against a bare C pthread loop (`stress.selftest.bench_kernel`).
Throughput is wall-clock over the round loop (plan, race, record); grading and checking run
after it and are reported apart.
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import trio

import mm
import workloads
from stress.harness import ModelTarget, RunConfig, TargetOptions, execute, make_target
from stress.history import Operation
from stress.selftest._figure import Figure

TASKS = 64
TRIO_TARGET = 50_000.0
CONTROLLED_TARGET = 10_000.0
BYTES_TARGET = 200.0
PLUGIN_TASKS = 8
PLUGINS = {
    "sync plug-in, traced lines": ("stress.selftest.lockfree:locked", 500.0),
    "async plug-in, controlled coroutines": ("stress.selftest.lockfree:locked_async", 2_000.0),
}


def _run_once(scheduler: str, rounds: int, seed: int) -> tuple[float, float, float]:
    """(ops/s wall, ops/s of process CPU time, overlap ratio) of one recorded run."""
    with tempfile.TemporaryDirectory(prefix="mmrace-bench-") as tmp:
        options = TargetOptions(seed=seed, scheduler=scheduler)
        config = RunConfig(
            workloads.get("same-page"), "same-page", options, TASKS, rounds, None, Path(tmp)
        )
        cpu = time.process_time()
        stats = trio.run(execute, config, ModelTarget(options))
        cpu = time.process_time() - cpu
    return stats.operations / stats.seconds, stats.operations / cpu, stats.overlap_ratio


def throughput(scheduler: str, target: float, rounds: int, repeat: int) -> Figure:
    """One scheduler's figure: the median of `repeat` recorded runs."""
    return _throughput_figure(
        scheduler, target, rounds, [_run_once(scheduler, rounds, s) for s in range(repeat)]
    )


def throughputs(schedulers: dict[str, float], rounds: int, repeat: int) -> list[Figure]:
    """Every scheduler's figure, their runs interleaved (trio, random, pct, trio, ...) so that
    a burst of load from other jobs on a shared machine hits all figures alike."""
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in schedulers}
    for seed in range(repeat):
        for name in schedulers:
            runs[name].append(_run_once(name, rounds, seed))
    return [
        _throughput_figure(name, target, rounds, runs[name]) for name, target in schedulers.items()
    ]


def _throughput_figure(
    scheduler: str, target: float, rounds: int, runs: list[tuple[float, float, float]]
) -> Figure:
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    overlap = statistics.median(r[2] for r in runs)
    label = "trio's own scheduling" if scheduler == "trio" else f"controlled ({scheduler})"
    return Figure(
        f"model, {TASKS} tasks, same-page, recorded: {label}",
        round(wall),
        "ops/s",
        target,
        wall >= target,
        f"median of {len(runs)}; {cpu:,.0f} ops per CPU-second; overlap {overlap:.0%}; "
        f"{rounds} rounds; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
    )


def _plugin_once(spec: str, scheduler: str, rounds: int, seed: int) -> float:
    """ops/s of one recorded plug-in run (same-page, PLUGIN_TASKS tasks)."""
    with tempfile.TemporaryDirectory(prefix="mmrace-bench-") as tmp:
        options = TargetOptions(spec=spec, seed=seed, scheduler=scheduler)
        config = RunConfig(
            workloads.get("same-page"), "same-page", options, PLUGIN_TASKS, rounds, None, Path(tmp)
        )
        stats = trio.run(execute, config, make_target(options))
    return stats.operations / stats.seconds


def plugin_throughputs(rounds: int, repeat: int) -> list[Figure]:
    """Each plug-in flavour under the controlled scheduler, random and PCT (d = 3), runs
    interleaved; the figure is the median of `repeat` runs of each."""
    runs: dict[tuple[str, str], list[float]] = {}
    for seed in range(repeat):
        for label, (spec, _) in PLUGINS.items():
            for scheduler in ("random", "pct"):
                runs.setdefault((label, scheduler), []).append(
                    _plugin_once(spec, scheduler, rounds, seed)
                )
    figures = []
    for (label, scheduler), values in runs.items():
        target = PLUGINS[label][1]
        value = statistics.median(values)
        figures.append(
            Figure(
                f"{label}, {PLUGIN_TASKS} tasks, same-page, recorded: controlled ({scheduler})",
                round(value),
                "ops/s",
                target,
                value >= target,
                f"median of {len(values)}; {rounds} rounds of {PLUGIN_TASKS} probes + 1 munmap; "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
            )
        )
    return figures


def _deep_size(rec: Operation) -> int:
    """Bytes a record holds on its own: the object, its list slot, and its unshared ints
    (small ints such as -17 are cached by CPython; the op object is the plan's)."""
    size = sys.getsizeof(rec) + 8
    for value in (rec.result, rec.call, rec.ret):
        if value is not None and not -5 <= value <= 256:
            size += sys.getsizeof(value)
    return size


def bytes_per_record(ops_per_task: int = 16) -> Figure:
    """Memory per recorded call of a 64-task x 16-op race: counted per record, and measured
    with tracemalloc over the whole round (buffers, merged list, task bookkeeping)."""

    async def one_round() -> tuple[float, float]:
        target = ModelTarget(TargetOptions(seed=1, scheduler="trio"))
        await target.open(TASKS, workloads.Space())
        base, n = 0x100000000000, ops_per_task
        per_task = [
            [
                mm.Op.mmap(base + (t * ops_per_task + k) * 4096, 4096, 3, mm.NR)
                for k in range(ops_per_task)
            ]
            for t in range(TASKS)
        ]
        await target.run_race(0, per_task)  # warm up: crew, caches
        await target.run_serial(0, [mm.Op.munmap(base, TASKS * ops_per_task * 4096)])
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        outcome = await target.run_race(1, per_task)
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        await target.aclose()
        n = max(len(outcome.records), 1)
        return sum(_deep_size(r) for r in outcome.records) / n, held / n

    own, traced = trio.run(one_round)
    return Figure(
        "memory per recorded call while its round runs",
        round(own),
        "bytes",
        BYTES_TARGET,
        own <= BYTES_TARGET,
        f"Operation + its ints; {traced:.0f} bytes/call traced over the whole round",
    )


def rss_growth(rounds: int = 1500) -> Figure:
    """Resident-memory growth per operation over a whole recorded run (streaming to disk)."""
    _run_once("trio", 50, 0)  # warm up imports and allocator
    gc.collect()
    before = _rss_bytes()
    with tempfile.TemporaryDirectory(prefix="mmrace-bench-") as tmp:
        options = TargetOptions(seed=1, scheduler="trio")
        config = RunConfig(
            workloads.get("same-page"), "same-page", options, TASKS, rounds, None, Path(tmp)
        )
        stats = trio.run(execute, config, ModelTarget(options))
    growth = max(0, _rss_bytes() - before) / stats.operations
    return Figure(
        "resident memory growth per recorded operation",
        round(growth, 1),
        "bytes",
        BYTES_TARGET,
        growth <= BYTES_TARGET,
        f"peak RSS over {stats.operations:,} ops (history streamed to disk)",
    )


def _rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def kernel_figures(seconds: float = 0.3, repeat: int = 5) -> list[Figure]:
    """The kernel target's figures, from the targets' hook (Linux only)."""
    if not sys.platform.startswith("linux"):
        return [Figure("kernel target", 0, "", None, True, "skipped: not Linux")]
    from stress.selftest.bench_kernel import bench_kernel

    return bench_kernel(seconds=seconds, repeats=repeat)


def run(repeat: int = 5, quick: bool = False, kernel: bool = True) -> list[Figure]:
    """Every harness figure (`repeat` runs of each timed figure, medians)."""
    rounds = 100 if quick else 300
    schedulers = {"trio": TRIO_TARGET, "random": CONTROLLED_TARGET, "pct": CONTROLLED_TARGET}
    figures = [
        *throughputs(schedulers, rounds, repeat),
        *plugin_throughputs(50 if quick else 200, repeat),
        bytes_per_record(),
        rss_growth(300 if quick else 1500),
    ]
    if kernel:
        figures += kernel_figures(0.1 if quick else 0.3, repeat)
    return figures
