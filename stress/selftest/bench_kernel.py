"""Benchmark hook for `mmrace bench harness`: kernel-target race rounds/s against a bare loop.

Both sides race the same round — every thread asks for the same page with
MAP_FIXED_NOREPLACE, then one thread unmaps it — in the same process, one after the other,
with the same system calls per round apart from the target's interference check:
- bare: N threads calling the ctypes binding directly (`mm.kernel.raw_mmap`, then thread 0
  `raw_munmap`), released by a `threading.Barrier` before the race and again before the
  cleanup, nothing recorded, nothing checked;
- target: `KernelTarget.run_race` + `run_serial(cleanup)` driven from trio (gate, call and
  return stamps, arena fence, the interference check before the race, records as `Call`
  values).
Bare and target runs alternate `repeats` times; the figure is the median of the paired
ratios target rounds/s / bare rounds/s (target: at least 0.8; a pair runs back to back, so
both sides see about the same load). The target's time is the time spent inside its two calls
per round: the benchmark's own overlap bookkeeping between rounds is left out.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Sequence

import trio

import mm
from mm import kernel as k
from stress.agent import overlap
from stress.harness import KernelTarget
from stress.selftest._figure import Figure
from workloads import Space

RATIO_TARGET = 0.8


def bare_rounds_per_second(threads: int, base: int, seconds: float) -> float:
    """Rounds/s of the bare loop (see the module docstring)."""
    page = k.page_size()
    barrier = threading.Barrier(threads)
    state = {"rounds": 0, "stop": False}  # written by thread 0 only, before a barrier

    def body(index: int) -> None:
        raw_mmap, raw_munmap, wait = k.raw_mmap, k.raw_munmap, barrier.wait
        deadline = time.perf_counter() + seconds
        while True:
            wait()
            if state["stop"]:
                return
            raw_mmap(base, page, mm.PROT_READ | mm.PROT_WRITE, mm.NR)
            wait()
            if index == 0:
                raw_munmap(base, page)
                state["rounds"] += 1
                state["stop"] = time.perf_counter() >= deadline

    workers = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    rounds = [state["rounds"]]
    return rounds[0] / (time.perf_counter() - start)


async def target_rounds_per_second(
    threads: int, base: int, seconds: float, gate: str = "barrier"
) -> tuple[float, float, float]:
    """Rounds/s of the kernel target, the share of rounds that really raced (all tasks in
    flight at once) and the share where at least two calls were in flight at once."""
    page = k.page_size()
    target = KernelTarget(gate=gate)
    await target.open(threads, Space(base, 1 << 30, page))
    grab = [[mm.Op.mmap(base, page, mm.PROT_READ | mm.PROT_WRITE, mm.NR)] for _ in range(threads)]
    cleanup = [mm.Op.munmap(base, page)]
    rounds = raced = paired = 0
    busy = 0.0  # time inside the target's calls (the overlap bookkeeping is left out)
    clock = time.perf_counter
    try:
        deadline = clock() + seconds
        while clock() < deadline:
            start = clock()
            outcome = await target.run_race(rounds, grab)
            await target.run_serial(rounds, cleanup)
            busy += clock() - start
            rounds += 1
            raced += outcome.overlapped
            paired += overlap([[(c.result, c.call, c.ret)] for c in outcome.records]) >= 2
    finally:
        await target.aclose()
    n = max(rounds, 1)
    return rounds / busy if busy else 0.0, raced / n, paired / n


def bench_kernel(
    threads: Sequence[int] = (2, 4, 8, 16),
    seconds: float = 0.3,
    repeats: int = 5,
    base: int = k.FAR_BASE,
    gate: str = "barrier",
) -> list[Figure]:
    """The figures for `mmrace bench harness` (Linux only; 2 x repeats x seconds per count).

    Bare loop and target alternate `repeats` times; each figure is the median of the paired
    ratios (with the median rounds/s of each side in the note)."""
    figures = []
    arena = k.Arena.reserve(1 << 30, base)  # verifies the bare loop's page is free
    arena.release()
    for n in threads:
        bares: list[float] = []
        runs: list[tuple[float, float, float]] = []
        for _ in range(repeats):
            bares.append(bare_rounds_per_second(n, base, seconds))
            runs.append(trio.run(target_rounds_per_second, n, base, seconds, gate))
        ratio = statistics.median(r[0] / b for r, b in zip(runs, bares, strict=True) if b)
        got = statistics.median(r[0] for r in runs)
        bare = statistics.median(bares)
        raced = statistics.median(r[1] for r in runs)
        paired = statistics.median(r[2] for r in runs)
        figures.append(
            Figure(
                f"kernel target, {n} threads: rounds/s vs bare loop",
                round(ratio, 3),
                "ratio",
                RATIO_TARGET,
                ratio >= RATIO_TARGET,
                f"{got:.0f} vs {bare:.0f} rounds/s (medians of {repeats}; bare: barrier, "
                f"{n} x mmap, barrier, munmap; target adds stamps, fence, interference check, "
                f"records; gate {gate}); really raced (all {n} in flight) {raced:.0%} of "
                f"rounds, two or more in flight {paired:.0%}; "
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
            )
        )
    return figures


if __name__ == "__main__":
    import sys

    chosen = sys.argv[1] if len(sys.argv) > 1 else "barrier"
    for fig in bench_kernel(gate=chosen):
        print(f"{fig.name}: {fig.value} {fig.unit} (target {fig.target}, ok={fig.ok}) {fig.note}")
