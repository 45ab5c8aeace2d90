"""The `model` target: N tasks racing on `mm.TrioCore`.

Two modes. Controlled (`random`, `pct`, `exhaustive`, or a recorded schedule): the
`ControlledScheduler` runs the N task coroutines one at a time and decides at every yield point
who goes next; the core's lock is a `SchedLock`; stamps are virtual (`clock == "steps"`), so a
seed or a recorded schedule gives the identical history. `exhaustive` runs every schedule of a
round up to a preemption bound, each from a fresh core, pruned by state caching
(`stress.harness._explore`). `trio`: N trio tasks under trio's own scheduling, a lock that does
not yield when free, a checkpoint before the lock (and rarely inside it) and monotonic-ns
stamps: the fast mode.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

import mm
from stress.harness._explore import (
    CountingScheduler,
    DFSStrategy,
    Explorer,
    LoggedDict,
    ModelKey,
    Prune,
    ReplayExplorer,
    observing,
)
from stress.harness._scheduler import (
    ControlledScheduler,
    ReplayStrategy,
    SchedLock,
    Strategy,
    make_strategy,
)
from stress.harness._target import RaceOutcome, TargetOptions
from stress.harness._variants import core_factory
from stress.history import Operation

if TYPE_CHECKING:
    from workloads import Space

CoreFactory = Callable[..., Any]
SCHEDULERS = ("random", "pct", "trio", "exhaustive")


INNER_YIELD_CHANCE = 0.015625


class FastLock:
    """A trio lock that does not yield when free (trio.Lock always checkpoints): fast mode."""

    def __init__(self) -> None:
        self._held = False
        self._lot = trio.lowlevel.ParkingLot()

    async def __aenter__(self) -> None:
        while self._held:
            await self._lot.park()
        self._held = True

    async def __aexit__(self, *exc: object) -> None:
        self._held = False
        if self._lot:
            self._lot.unpark()


class _Crew:
    """Persistent worker tasks for fast mode, released together by a gate each round.

    Spawning 64 tasks per round costs about as much as the race itself; the crew sleeps in
    `wait_task_rescheduled` between rounds instead, and `run` reschedules every worker (what
    `ParkingLot.unpark_all` does, without its bookkeeping). Each worker runs its own plan
    directly (no per-round coroutine), recording into its own buffer. Workers are trio system
    tasks (they outlive `open`); they never raise: a failure is stored and re-raised by `run`.
    """

    def __init__(self, tasks: int, hook: Callable[[str], Awaitable[None]]) -> None:
        self.tasks = tasks
        self.hook = hook
        self.parked: list[trio.lowlevel.Task] = []
        self.done = trio.Event()
        self.remaining = 0
        self.closing = False
        self.apply: Callable[[mm.Op], Awaitable[int]] | None = None
        self.now: Callable[[], int] = time.monotonic_ns
        self.plans: Sequence[Sequence[mm.Op]] = ()
        self.round = 0
        self.buffers: list[list[Operation]] = []
        self.errors: list[BaseException] = []

    async def start(self) -> None:
        for i in range(self.tasks):
            trio.lowlevel.spawn_system_task(self._worker, i, name=f"mmrace-worker-{i}")
        while len(self.parked) < self.tasks:
            await trio.lowlevel.checkpoint()

    async def _worker(self, i: int) -> None:
        mm.set_async_yield_hook(self.hook)
        me = trio.lowlevel.current_task()
        park = trio.lowlevel.wait_task_rescheduled
        while True:
            self.parked.append(me)
            await park(_abort)
            if self.closing:
                return
            plans, apply, now, rnd = self.plans, self.apply, self.now, self.round
            assert apply is not None
            if i < len(plans):
                append = self.buffers[i].append
                try:
                    for op in plans[i]:
                        call = now()
                        result = await apply(op)
                        append(Operation(i, op, result, call, now(), rnd))
                except Exception as exc:
                    self.errors.append(exc)
            self.remaining -= 1
            if not self.remaining:
                self.done.set()

    async def run(
        self,
        round_index: int,
        apply: Callable[[mm.Op], Awaitable[int]],
        now: Callable[[], int],
        plans: Sequence[Sequence[mm.Op]],
    ) -> list[list[Operation]]:
        """Race `plans` (task i runs plans[i]); each task's records, in plan order."""
        self.apply, self.now, self.plans = apply, now, plans
        self.round = round_index
        self.buffers = [[] for _ in range(self.tasks)]
        self.done = trio.Event()
        self.remaining = self.tasks
        self._release()
        await self.done.wait()
        if self.errors:
            raise self.errors[0]
        return self.buffers

    def _release(self) -> None:
        parked, self.parked = self.parked, []
        reschedule = trio.lowlevel.reschedule
        for task in parked:
            reschedule(task)

    def close(self) -> None:
        self.closing = True
        self._release()


def _abort(_: object) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.SUCCEEDED


def _trio_hook(seed: int, tasks: int) -> Callable[[str], Awaitable[None]]:
    """Fast mode's yield hook: always a checkpoint before the lock (so every task has invoked
    its call before any proceeds); at the windows inside it, a seeded chance of
    INNER_YIELD_CHANCE / tasks (a yield there makes every later task queue on the lock, which
    costs a task switch each, so it stays rare; the controlled scheduler explores windows)."""
    chance = random.Random(f"{seed}:trio").random
    inner = INNER_YIELD_CHANCE / max(tasks, 1)
    # a schedule point without a cancel point: the crew are system tasks, cancelled only
    # when the whole run ends (and then at their park)
    checkpoint = trio.lowlevel.cancel_shielded_checkpoint

    async def hook(name: str) -> None:
        if name == mm.ENTER or chance() < inner:
            await checkpoint()

    return hook


class ModelTarget:
    """Trio tasks against a `TrioCore` (or a subclass: a bug variant, a test's racy toy core)."""

    name = "model"

    def __init__(
        self,
        options: TargetOptions,
        core: CoreFactory | None = None,
        replay: Mapping[int, Sequence[int]] | None = None,
        plans: Mapping[int, int] | None = None,
    ) -> None:
        if options.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {options.scheduler!r}")
        self.options = options
        self.params = options.params or mm.Params.reference()
        self._make_core = core or core_factory(options.variant, "trio")
        self.controlled = options.scheduler != "trio" or replay is not None
        self.clock = "steps" if self.controlled else "ns"
        self.scheduler: ControlledScheduler | None = None
        # exhaustive: an explorer the runner drives (a replayed exploration: its plan rounds)
        self.explorer: Explorer | ReplayExplorer | None = None
        self._key: ModelKey | None = None
        self._mark = 0
        if self.controlled:
            strategy: Strategy
            if replay is not None:
                strategy = ReplayStrategy(replay)
            elif options.scheduler == "exhaustive":
                strategy = DFSStrategy()
            else:
                strategy = make_strategy(options.scheduler, options.seed, options.depth)
            self.scheduler = ControlledScheduler(strategy)
            self._now: Callable[[], int] = self.scheduler.tick
        else:
            self._now = time.monotonic_ns
        if options.scheduler == "exhaustive":
            if replay is not None:
                self.explorer = ReplayExplorer(plans or {}, on_begin=self._fresh)
            else:
                assert isinstance(strategy, DFSStrategy)
                self.explorer = Explorer(
                    strategy,
                    options.preemptions,
                    options.max_schedules,
                    key=self._state_key,
                    on_begin=self._fresh,
                )
                self._make_core = observing(self._make_core)
        self.core: mm.TrioCore | None = None
        self._crew: _Crew | None = None
        self.describe: dict[str, Any] = {
            "scheduler": options.scheduler if replay is None else "replay",
            "clock": self.clock,
            "variant": options.variant,
        }
        if options.scheduler == "pct":
            self.describe["pct_depth"] = options.depth
        if options.scheduler == "exhaustive":
            self.describe["preemptions"] = options.preemptions

    @property
    def last_choices(self) -> list[int]:
        """The controlled scheduler's decisions in the last race (empty under trio)."""
        return list(self.scheduler.choices) if self.scheduler else []

    async def open(self, tasks: int, space: Space) -> None:
        lock: Any = SchedLock(self.scheduler) if self.scheduler else FastLock()
        self.core = self._make_core(self.params, lock=lock)

    def _fresh(self, pruned_before: bool) -> None:
        """Exhaustive: each schedule starts from a fresh core, scheduler and lock; the virtual
        clock goes on, except after a pruned schedule (not recorded), whose ticks are undone."""
        old = self.scheduler
        assert old is not None
        if pruned_before:
            old.clock = self._mark
        self._mark = old.clock
        replaying = isinstance(self.explorer, ReplayExplorer)
        sched = ControlledScheduler(old.strategy) if replaying else CountingScheduler(old.strategy)
        sched.clock = old.clock
        self.scheduler = sched
        self._now = sched.tick
        core = self._make_core(self.params, lock=SchedLock(sched))
        if not replaying and "scratch" in core.__dict__:
            core.scratch = LoggedDict(core)
        self.core = core

    def _state_key(self, runnable: Sequence[int], last: int | None) -> Any:
        assert self._key is not None, "a decision outside a race"
        return self._key(runnable, last)

    async def run_serial(self, round_index: int, ops: Sequence[mm.Op]) -> list[Operation]:
        assert self.core is not None, "open() first"
        now, core = self._now, self.core
        out = []
        with mm.yield_hooks():
            for op in ops:
                call = now()
                result = await core.apply(op)
                out.append(Operation(0, op, result, call, now(), round_index))
        return out

    async def run_race(self, round_index: int, plans: Sequence[Sequence[mm.Op]]) -> RaceOutcome:
        assert self.core is not None, "open() first"
        now, apply = self._now, self.core.apply
        if self.explorer is not None and not isinstance(self.explorer, ReplayExplorer):
            return await self._explore_race(round_index, plans)
        if self.scheduler is not None:
            buffers: list[list[Operation]] = [[] for _ in plans]

            async def run(task: int) -> None:
                append = buffers[task].append
                for op in plans[task]:
                    call = now()
                    result = await apply(op)
                    append(Operation(task, op, result, call, now(), round_index))

            await self.scheduler.race(round_index, [partial(run, i) for i in range(len(plans))])
        else:
            if self._crew is None or self._crew.tasks != len(plans):
                if self._crew is not None:
                    self._crew.close()
                self._crew = _Crew(len(plans), _trio_hook(self.options.seed, len(plans)))
                await self._crew.start()
            buffers = await self._crew.run(round_index, apply, now, plans)
        records = [rec for buf in buffers for rec in buf]
        return RaceOutcome(records, [], _really_raced(buffers))

    async def _explore_race(
        self, round_index: int, plans: Sequence[Sequence[mm.Op]]
    ) -> RaceOutcome:
        """One schedule of the exhaustive search, with the state key kept up to date."""
        sched, core = self.scheduler, self.core
        assert isinstance(sched, CountingScheduler) and core is not None
        now, apply = sched.tick, core.apply
        lock = core.lock
        key = self._key = ModelKey(core, sched, lock, len(plans))
        buffers: list[list[Operation]] = [[] for _ in plans]

        async def run(task: int) -> None:
            append, done = buffers[task].append, key.buffers[task].append
            for k, op in enumerate(plans[task]):
                if k:
                    key.invoked[task].append(tuple(len(b) for b in key.buffers))
                call = now()
                result = await apply(op)
                append(Operation(task, op, result, call, now(), round_index))
                done((op, result))

        pruned = False
        try:
            await sched.race(round_index, [partial(run, i) for i in range(len(plans))])
        except Prune:
            pruned = True
        finally:
            core._obs = None  # type: ignore[attr-defined]
            self._key = None
        records = [rec for buf in buffers for rec in buf]
        return RaceOutcome(records, [], _really_raced(buffers), pruned=pruned)

    async def aclose(self) -> None:
        self.core = None
        if self._crew is not None:
            self._crew.close()
            self._crew = None


def _really_raced(buffers: Sequence[Sequence[Operation]]) -> bool:
    """`really_raced` on per-task buffers in call order: a task's span is its first call's
    invocation to its last call's response (a pending call, always the last, never ends)."""
    ran = 0
    latest_start = 0
    earliest_end: int | None = None
    for buf in buffers:
        if buf:
            ran += 1
            start, end = buf[0].call, buf[-1].ret
            if ran == 1 or start > latest_start:
                latest_start = start
            if end is not None and (earliest_end is None or end < earliest_end):
                earliest_end = end
    return ran >= 2 and (earliest_end is None or latest_start < earliest_end)


def make_target(options: TargetOptions) -> ModelTarget:
    return ModelTarget(options)


def make_replay_target(
    options: TargetOptions,
    schedule: Mapping[int, Sequence[int]],
    plans: Mapping[int, int] | None = None,
) -> ModelTarget:
    """A model target that replays recorded decisions (``schedule[round]``) instead of choosing;
    an exhaustive run's rounds also replay their recorded plan rounds (``plans[round]``)."""
    return ModelTarget(options, replay=schedule, plans=plans)
