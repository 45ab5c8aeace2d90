"""The `model-threads` target: N OS threads racing on `mm.ThreadCore`, with seeded noise.

CPython threads almost never switch inside a short critical section, so plain threads would
never interleave where it matters. Each worker thread installs a sync yield hook that, at
every yield point, draws from its own seeded RNG: nothing, `sleep(0)` (give the GIL away), a
short sleep, or a short spin. The noise choices derive from the run seed; the interleaving
itself is the OS's, so histories are not reproducible (stamps are monotonic ns).

Threads are reused across rounds (`stress.agent._worker.WorkerPool`: a start gate releases them
together); the trio side waits without a thread hop (`_pool.run_round`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import mm
from stress.agent import WorkerError, WorkerPool
from stress.harness._pool import run_round
from stress.harness._target import RaceOutcome, TargetOptions, really_raced
from stress.harness._variants import core_factory
from stress.history import Operation

if TYPE_CHECKING:
    from workloads import Space

SLEEP0, SHORT_SLEEP, SPIN = 0.3, 0.4, 0.5
"""Cumulative chances at a yield point: sleep(0) 30%, a short sleep 10%, a spin 10%, else
nothing (50%)."""


def noise_hook(seed: int, task: int) -> Callable[[str], None]:
    """The seeded sync hook of worker `task`."""
    rng = random.Random(f"{seed}:noise:{task}")
    draw = rng.random

    def hook(name: str) -> None:
        r = draw()
        if r < SLEEP0:
            time.sleep(0)
        elif r < SHORT_SLEEP:
            time.sleep(draw() * 20e-6)
        elif r < SPIN:
            for _ in range(int(draw() * 200)):
                pass

    return hook


class ThreadsTarget:
    """OS threads against a `ThreadCore` (or a variant's); setup/cleanup run in the trio thread."""

    name = "model-threads"
    clock = "ns"

    def __init__(self, options: TargetOptions, core: Callable[..., Any] | None = None) -> None:
        self.options = options
        self.params = options.params or mm.Params.reference()
        self._make_core = core or core_factory(options.variant, "threads")
        self.core: mm.ThreadCore | None = None
        self.pool: WorkerPool | None = None
        self.describe: dict[str, Any] = {
            "scheduler": "os-threads",
            "clock": self.clock,
            "noise": options.noise,
            "variant": options.variant,
        }

    async def open(self, tasks: int, space: Space) -> None:
        self.core = self._make_core(self.params)
        seed, noise = self.options.seed, self.options.noise

        def init(index: int) -> None:
            mm.set_yield_hook(noise_hook(seed, index) if noise else None)

        self.pool = WorkerPool(tasks, init=init, name="mmrace-model")

    async def run_serial(self, round_index: int, ops: Sequence[mm.Op]) -> list[Operation]:
        assert self.core is not None, "open() first"
        out = []
        now, apply = time.monotonic_ns, self.core.apply
        with mm.yield_hooks():
            for op in ops:
                call = now()
                result = apply(op)
                out.append(Operation(0, op, result, call, now(), round_index))
        return out

    async def run_race(self, round_index: int, plans: Sequence[Sequence[mm.Op]]) -> RaceOutcome:
        assert self.core is not None and self.pool is not None, "open() first"
        apply = self.core.apply
        calls = [[(apply, (op,)) for op in ops] for ops in plans]
        problems: list[str] = []
        try:
            results = await run_round(self.pool, calls)
        except WorkerError as exc:
            results = self.pool.last_records
            problems.append(f"round {round_index}: {exc}")
        records = [
            Operation(task, op, result, call, ret, round_index)
            for task, ops in enumerate(plans)
            for op, (result, call, ret) in zip(ops, results[task], strict=False)
        ]
        return RaceOutcome(records, problems, really_raced(records))

    async def aclose(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        self.core = None


def make_target(options: TargetOptions) -> ThreadsTarget:
    return ThreadsTarget(options)
