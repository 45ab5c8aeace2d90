"""Benchmark hook for `mmrace bench harness`: kernel-target race rounds/s against a bare loop.

Both sides race the same round — every thread asks for the same page with
MAP_FIXED_NOREPLACE, then one thread unmaps it — in the same process, one after the other:
- bare: N threads calling the ctypes binding directly (`mm.kernel.raw_mmap`), released by a
  `threading.Barrier`, nothing recorded;
- target: `KernelTarget.run_race` + `run_serial(cleanup)` driven from trio (gate, recording,
  arena fence, interference probe, records as `Call` values).
The figure is target rounds/s divided by bare rounds/s (target: at least 0.8), plus the share
of target rounds whose calls really overlapped (`really_raced`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import attrs
import trio

import mm
from mm import kernel as k
from stress.harness.kernel import KernelTarget
from stress.worker import overlap
from workloads import Space

RATIO_TARGET = 0.8


@attrs.frozen
class BenchFigure:
    """One measured figure: `ok` is None when the figure has no target."""

    name: str
    value: float
    unit: str
    target: float | None
    ok: bool | None
    note: str = ""


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
    try:
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            outcome = await target.run_race(rounds, grab)
            await target.run_serial(rounds, cleanup)
            rounds += 1
            raced += outcome.overlapped
            spans = [[(c.result, c.call, c.ret)] for c in outcome.records]
            paired += overlap(spans) >= 2
        elapsed = time.perf_counter() - start
    finally:
        await target.aclose()
    n = max(rounds, 1)
    return rounds / elapsed, raced / n, paired / n


def bench_kernel(
    threads: Sequence[int] = (2, 4, 8, 16),
    seconds: float = 0.3,
    repeats: int = 3,
    base: int = k.FAR_BASE,
    gate: str = "barrier",
) -> list[BenchFigure]:
    """The figures for `mmrace bench harness` (Linux only; 2 x repeats x seconds per count).

    Bare loop and target alternate `repeats` times; the best of each is kept (the machine
    may be shared: the best run is the least disturbed one)."""
    figures = []
    arena = k.Arena.reserve(1 << 30, base)  # verifies the bare loop's page is free
    arena.release()
    for n in threads:
        bare = got = raced = paired = 0.0
        for _ in range(repeats):
            bare = max(bare, bare_rounds_per_second(n, base, seconds))
            rps, r, p = trio.run(target_rounds_per_second, n, base, seconds, gate)
            if rps > got:
                got, raced, paired = rps, r, p
        ratio = got / bare if bare else 0.0
        figures.append(
            BenchFigure(
                f"kernel target, {n} threads: rounds/s vs bare loop",
                round(ratio, 3),
                "ratio",
                RATIO_TARGET,
                ratio >= RATIO_TARGET,
                f"{got:.0f} vs {bare:.0f} rounds/s (gate {gate}); really raced (all {n} in "
                f"flight) {raced:.0%} of rounds, two or more in flight {paired:.0%}",
            )
        )
    return figures


if __name__ == "__main__":
    import sys

    chosen = sys.argv[1] if len(sys.argv) > 1 else "barrier"
    for fig in bench_kernel(gate=chosen):
        print(f"{fig.name}: {fig.value} {fig.unit} (target {fig.target}, ok={fig.ok}) {fig.note}")
