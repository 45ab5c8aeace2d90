"""Plug-in targets: race a user's own mmap/munmap/mprotect implementation.

``--target package.module:factory`` imports ``package.module`` (with the current directory on
``sys.path``, as ``python -m`` would), calls ``factory(params)`` when it takes one positional
argument (the `mm.Params` of the run) or ``factory()`` when it takes none, and expects an
object with ``mmap(addr, length, prot, flags)``, ``munmap(addr, length)`` and
``mprotect(addr, length, prot)`` returning raw results (address or 0, ``-errno``).

All three methods sync: each task is an OS thread of a `stress.agent._worker.WorkerPool`, and the
sync yield hook installed in every worker injects seeded scheduling noise at the plug-in's
``mm.yield_point(name)`` calls. All three async: each task is a trio task and the async hook
injects seeded noise at ``await mm.ayield_point(name)``. Mixed: refused.
"""

from __future__ import annotations

import importlib
import inspect
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import trio

import mm
from stress.agent import Call as WorkerCall
from stress.agent import Record, WorkerError, WorkerPool, op_args
from stress.errors import UsageError
from stress.harness._pool import run_round
from stress.harness._target import RaceOutcome, TargetOptions, really_raced
from stress.harness._threads import noise_hook
from stress.history import Operation

if TYPE_CHECKING:
    from workloads import Space

METHODS = ("mmap", "munmap", "mprotect")
NOISE_PROBABILITY = 0.5  # chance that a yield point actually yields


def load_factory(spec: str) -> Callable[..., Any]:
    """Import ``package.module:factory`` and return the factory (UsageError naming the problem)."""
    place = f"--target {spec}"
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"{place}: expected package.module:factory")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise UsageError(f"{place}: module {module_name!r} not found") from None
        raise UsageError(f"{place}: importing {module_name!r} failed: {exc}") from None
    except Exception as exc:
        raise UsageError(
            f"{place}: importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise UsageError(f"{place}: module {module_name!r} has no attribute {attr!r}")
    if not callable(factory):
        raise UsageError(f"{place}: {attr!r} is not callable")
    return factory


def build_impl(spec: str, factory: Callable[..., Any], params: mm.Params) -> tuple[Any, bool]:
    """Call the factory and check the object; returns (implementation, is_async)."""
    place = f"--target {spec}"
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    args: tuple[Any, ...] = (params,)
    if signature is not None:
        try:
            signature.bind(params)
        except TypeError:
            try:
                signature.bind()
            except TypeError:
                raise UsageError(
                    f"{place}: the factory must take one argument (mm.Params) or none"
                ) from None
            args = ()
    try:
        impl = factory(*args)
    except Exception as exc:
        raise UsageError(f"{place}: the factory raised {type(exc).__name__}: {exc}") from None
    missing = [name for name in METHODS if not callable(getattr(impl, name, None))]
    if missing:
        raise UsageError(
            f"{place}: the factory's {type(impl).__name__} object lacks method(s) "
            f"{', '.join(missing)}"
        )
    kinds = {name: inspect.iscoroutinefunction(getattr(impl, name)) for name in METHODS}
    if len(set(kinds.values())) > 1:
        sync = [n for n, a in kinds.items() if not a]
        raise UsageError(f"{place}: mix of async and sync methods ({', '.join(sync)} sync)")
    return impl, kinds["mmap"]


def _check_result(spec: str, op: mm.Op, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"--target {spec}: {op.kind} returned {value!r}, not an int")
    return value


def _trio_noise(seed: int) -> Callable[[str], Any]:
    """A seeded async hook: at about half the yield points, a trio checkpoint (or two)."""
    rng = random.Random(f"{seed}:trio")

    async def hook(name: str) -> None:
        r = rng.random()
        if r < NOISE_PROBABILITY:
            await trio.lowlevel.checkpoint()
            if r < NOISE_PROBABILITY / 4:
                await trio.lowlevel.checkpoint()

    return hook


class PluginTarget:
    """A user's implementation raced by threads (sync) or trio tasks (async)."""

    clock = "ns"

    def __init__(self, options: TargetOptions) -> None:
        self.spec = options.spec
        self.name = f"plugin:{options.spec}"
        self.params = options.params if options.params is not None else mm.Params.reference()
        self.seed = options.seed
        self.noise = options.noise
        factory = load_factory(options.spec)
        self.impl, self.is_async = build_impl(options.spec, factory, self.params)
        self.describe: dict[str, Any] = {
            "plugin": options.spec,
            "flavour": "async (trio tasks)" if self.is_async else "sync (OS threads)",
            "noise": self.noise,
        }
        self._pool: WorkerPool | None = None
        # one seeded noise stream for the whole run (a fresh one per round would repeat)
        self._async_hook = _trio_noise(self.seed) if self.noise and self.is_async else None

    async def open(self, tasks: int, space: Space) -> None:
        if not self.is_async:
            seed, noise = self.seed, self.noise

            def init(index: int) -> None:
                mm.set_yield_hook(noise_hook(seed, index) if noise else None)

            self._pool = WorkerPool(tasks, init=init, name="mmrace-plugin")

    async def run_serial(self, round_index: int, ops: Sequence[mm.Op]) -> list[Operation]:
        records, problems = await self._run(round_index, [ops])
        if problems:
            raise UsageError(f"--target {self.spec}: {problems[0]}")
        return records

    async def run_race(self, round_index: int, plans: Sequence[Sequence[mm.Op]]) -> RaceOutcome:
        records, problems = await self._run(round_index, plans)
        return RaceOutcome(records, problems, really_raced(records))

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await trio.to_thread.run_sync(pool.close)

    async def _run(
        self, round_index: int, plans: Sequence[Sequence[mm.Op]]
    ) -> tuple[list[Operation], list[str]]:
        if self.is_async:
            return await self._run_async(round_index, plans)
        return await self._run_threads(round_index, plans)

    async def _run_threads(
        self, round_index: int, plans: Sequence[Sequence[mm.Op]]
    ) -> tuple[list[Operation], list[str]]:
        assert self._pool is not None, "open() first"
        pool = self._pool
        bound: list[list[WorkerCall]] = [
            [(getattr(self.impl, op.kind), op_args(op)) for op in plan] for plan in plans
        ]
        problems: list[str] = []
        try:
            raw: list[list[Record]] = await run_round(pool, bound)
        except WorkerError as exc:
            raw = pool.last_records
            problems.append(f"plug-in raised in {exc}")
        records = []
        for task, (plan, got) in enumerate(zip(plans, raw, strict=False)):
            for op, (result, call, ret) in zip(plan, got, strict=False):
                value = None if result is None else _check_result(self.spec, op, result)
                records.append(Operation(task, op, value, call, ret, round_index))
        return records, problems

    async def _run_async(
        self, round_index: int, plans: Sequence[Sequence[mm.Op]]
    ) -> tuple[list[Operation], list[str]]:
        per_task: list[list[Operation]] = [[] for _ in plans]
        problems: list[str] = []
        impl = self.impl
        clock = time.monotonic_ns

        async def one(task: int, plan: Sequence[mm.Op]) -> None:
            out = per_task[task]
            for op in plan:
                call = clock()
                try:
                    value = await getattr(impl, op.kind)(*op_args(op))
                except Exception as exc:
                    out.append(Operation(task, op, None, call, None, round_index))
                    problems.append(f"plug-in raised in task {task}: {type(exc).__name__}: {exc}")
                    return
                result = _check_result(self.spec, op, value)
                out.append(Operation(task, op, result, call, clock(), round_index))

        with mm.yield_hooks(async_=self._async_hook):
            async with trio.open_nursery() as nursery:
                for task, plan in enumerate(plans):
                    nursery.start_soon(one, task, plan)
        return [rec for task_records in per_task for rec in task_records], problems


def make_target(options: TargetOptions) -> PluginTarget:
    """Registry factory for ``--target package.module:factory``."""
    return PluginTarget(options)
