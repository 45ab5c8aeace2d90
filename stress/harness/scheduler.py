"""The controlled scheduler: trio tasks that run one at a time, in an order a strategy picks.

Every task parks at each yield point (`mm.ayield_point`) and the scheduler grants exactly one
task at a time, so the interleaving is a pure function of the strategy's decisions: the same
decisions give the same history, and recorded decisions replay it exactly.

The lock (`SchedLock`) is scheduler-aware: a task that finds it held is *blocked*, not
runnable, until the holder releases it; then every waiter becomes runnable again and retries.
Time is virtual: `tick()` counts events, so stamps are exact and replayable.

Strategies: `RandomStrategy` (uniform among runnable tasks), `PCTStrategy` (probabilistic
concurrency testing, Burckhardt et al. 2010: random distinct priorities, d-1 priority change
points; the highest-priority runnable task runs) and `ReplayStrategy` (recorded choices).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Protocol

import trio

import mm


class ScheduleDiverged(Exception):
    """Replay asked for a task that is not runnable: the run is not the recorded one."""


class Deadlock(Exception):
    """Every live task is blocked on the lock (a broken core)."""


class Strategy(Protocol):
    """Picks the next task at each decision point of a round."""

    name: str

    def begin_round(self, round_index: int, tasks: int) -> None: ...

    def choose(self, runnable: Sequence[int], last: int | None) -> int: ...


class RandomStrategy:
    """Uniformly random among the runnable tasks; one RNG per round, derived from the seed."""

    name = "random"

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._rng = random.Random(0)

    def begin_round(self, round_index: int, tasks: int) -> None:
        self._rng = random.Random(f"{self.seed}:sched:{round_index}")

    def choose(self, runnable: Sequence[int], last: int | None) -> int:
        return runnable[self._rng.randrange(len(runnable))]


class PCTStrategy:
    """PCT with bug depth d: random distinct priorities, d-1 change points per round.

    Change points are drawn uniformly from the expected number of decisions of a round (the
    previous round's count; a guess of 4 per task at first). At the i-th change point the task
    that just ran drops to priority d-1-i, below every initial priority.
    """

    name = "pct"

    def __init__(self, seed: int, depth: int = 3) -> None:
        if depth < 1:
            raise ValueError("PCT depth must be at least 1")
        self.seed = seed
        self.depth = depth
        self._priority: list[int] = []
        self._changes: dict[int, int] = {}
        self._step = 0
        self._expected = 0

    def begin_round(self, round_index: int, tasks: int) -> None:
        rng = random.Random(f"{self.seed}:pct:{round_index}")
        expected = self._step if self._step else 4 * tasks
        self._expected = max(expected, 1)
        order = list(range(tasks))
        rng.shuffle(order)
        self._priority = [0] * tasks
        for rank, task in enumerate(order):
            self._priority[task] = self.depth + rank
        points = rng.sample(range(1, self._expected + 1), min(self.depth - 1, self._expected))
        self._changes = {step: self.depth - 1 - i for i, step in enumerate(sorted(points))}
        self._step = 0

    def choose(self, runnable: Sequence[int], last: int | None) -> int:
        self._step += 1
        drop = self._changes.get(self._step)
        if drop is not None and last is not None:
            self._priority[last] = drop
        prio = self._priority
        return max(runnable, key=prio.__getitem__)


class ReplayStrategy:
    """Replays recorded choices, round by round; a choice that is not runnable diverges."""

    name = "replay"

    def __init__(self, rounds: Mapping[int, Sequence[int]]) -> None:
        self.rounds = rounds
        self._choices: Sequence[int] = ()
        self._at = 0
        self._round = -1

    def begin_round(self, round_index: int, tasks: int) -> None:
        if round_index not in self.rounds:
            raise ScheduleDiverged(f"round {round_index}: no recorded schedule")
        self._choices = self.rounds[round_index]
        self._at = 0
        self._round = round_index

    def choose(self, runnable: Sequence[int], last: int | None) -> int:
        if self._at >= len(self._choices):
            raise ScheduleDiverged(f"round {self._round}: more decisions than recorded")
        task = self._choices[self._at]
        self._at += 1
        if task not in runnable:
            raise ScheduleDiverged(
                f"round {self._round}, decision {self._at}: task {task} is not runnable"
            )
        return task


def make_strategy(name: str, seed: int, depth: int = 3) -> Strategy:
    if name == "random":
        return RandomStrategy(seed)
    if name == "pct":
        return PCTStrategy(seed, depth)
    raise ValueError(f"unknown strategy {name!r}")


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """The error that failed a round: the first that is not a cancellation it caused."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if not isinstance(exc, trio.Cancelled):
            return exc
    return leaves[0] if leaves else group


class ControlledScheduler:
    """Runs a round's task bodies one at a time; `choices` records every decision."""

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.clock = 0
        self.choices: list[int] = []
        self._ids: dict[trio.lowlevel.Task, int] = {}
        self._parked: dict[int, trio.lowlevel.Task] = {}
        self._blocked: dict[int, trio.lowlevel.Task] = {}
        self._in_transit = 0
        self.locks: list[SchedLock] = []
        self._failed = False
        self._start = 0
        self._arrived: list[bool] = []
        self._last: int | None = None

    def tick(self) -> int:
        """The virtual clock: one tick per stamp, so stamps are ordered as events happened.

        While tasks are still arriving (running freely, in trio's order, up to their first
        yield point) every stamp is the round's start instant: that order is trio's, not the
        strategy's, and must not leak into the history.
        """
        if self._in_transit:
            return self._start
        self.clock += 1
        return self.clock

    def current(self) -> int:
        """The id of the calling task in the current round (-1 outside a round)."""
        return self._ids.get(trio.lowlevel.current_task(), -1)

    async def race(self, round_index: int, bodies: Sequence[Callable[[], Awaitable[None]]]) -> None:
        """Run `bodies[i]` as task i under control; returns when all have finished.

        Tasks run freely (in trio's order) up to their first yield point, so every task has
        invoked its first call before the first decision: the start gate of a real race.
        """
        self.strategy.begin_round(round_index, len(bodies))
        self.choices = []
        self._ids.clear()
        self._arrived = [False] * len(bodies)
        self._in_transit = len(bodies)
        self._last = None
        self.clock += 1
        self._start = self.clock
        self._failed = False
        for lock in self.locks:
            lock.reset()
        try:
            with mm.yield_hooks(async_=self._hook):
                async with trio.open_nursery() as nursery:
                    for i, body in enumerate(bodies):
                        nursery.start_soon(self._task, i, body)
        except BaseExceptionGroup as group:
            raise _first_error(group) from None
        finally:
            self._ids.clear()
            self._parked.clear()
            self._blocked.clear()

    async def _task(self, i: int, body: Callable[[], Awaitable[None]]) -> None:
        self._ids[trio.lowlevel.current_task()] = i
        try:
            await body()
        except BaseException:
            self._failed = True
            raise
        finally:
            self._stopped(i)
            if self._in_transit == 0 and not self._failed:
                if self._parked:
                    self._grant(self._decide())
                elif self._blocked:
                    raise Deadlock(f"tasks {sorted(self._blocked)} wait for a lock nobody holds")

    def _stopped(self, i: int) -> None:
        """Task i stops running (parks, blocks or ends); the first stop is its arrival."""
        if not self._arrived[i]:
            self._arrived[i] = True
            self._in_transit -= 1

    def _abort(self, i: int) -> trio.lowlevel.Abort:
        """Parked or blocked task i is cancelled: the round is over, stop scheduling it."""
        self._failed = True
        self._parked.pop(i, None)
        self._blocked.pop(i, None)
        return trio.lowlevel.Abort.SUCCEEDED

    async def _hook(self, name: str) -> None:
        task = trio.lowlevel.current_task()
        i = self._ids.get(task)
        if i is None:  # a serial call outside a round: nothing to schedule
            return
        if self._failed:  # the round is being torn down: just be cancellable
            await trio.lowlevel.checkpoint()
            return
        self._parked[i] = task
        self._stopped(i)
        if self._in_transit:
            await trio.lowlevel.wait_task_rescheduled(lambda _: self._abort(i))
            return
        chosen = self._decide()
        if chosen == i:
            del self._parked[i]
            return
        self._grant(chosen)
        await trio.lowlevel.wait_task_rescheduled(lambda _: self._abort(i))

    def _decide(self) -> int:
        try:
            chosen = self.strategy.choose(sorted(self._parked), self._last)
        except BaseException:
            self._failed = True
            raise
        self.choices.append(chosen)
        self._last = chosen
        self.clock += 1
        return chosen

    def _grant(self, chosen: int) -> None:
        trio.lowlevel.reschedule(self._parked.pop(chosen))

    async def block(self, i: int) -> None:
        """Task i found the lock held: it waits, not runnable, until `unblock`."""
        if self._failed:
            await trio.lowlevel.checkpoint()
        self._blocked[i] = trio.lowlevel.current_task()
        self._stopped(i)
        if not self._in_transit:
            if not self._parked:
                raise Deadlock(f"task {i} waits for a lock and no other task can run")
            self._grant(self._decide())
        await trio.lowlevel.wait_task_rescheduled(lambda _: self._abort(i))

    def pick(self, candidates: Sequence[int]) -> int:
        """A recorded decision among `candidates` (e.g. which waiter gets a released lock)."""
        chosen = self.strategy.choose(sorted(candidates), self._last)
        self.choices.append(chosen)
        self.clock += 1
        return chosen

    def unblock(self, i: int) -> None:
        """Task i may run again (it was handed the lock it waited for)."""
        task = self._blocked.pop(i, None)
        if task is not None:
            self._parked[i] = task

    @property
    def failed(self) -> bool:
        """The current round is being torn down (an error or a cancellation)."""
        return self._failed


class SchedLock:
    """A lock for `mm.TrioCore` that tells the controlled scheduler who is blocked.

    A task that finds it held blocks (not runnable). On release the strategy picks which
    waiter gets the lock next (a recorded decision); that one becomes runnable holding it, the
    others stay blocked, so a round costs O(tasks) decisions, not O(tasks^2) retries.
    """

    def __init__(self, scheduler: ControlledScheduler) -> None:
        self.scheduler = scheduler
        self.holder: int | None = None
        self._waiters: list[int] = []
        scheduler.locks.append(self)

    def reset(self) -> None:
        """Forget holder and waiters (a torn-down round may leave them behind)."""
        self.holder = None
        self._waiters.clear()

    async def __aenter__(self) -> None:
        me = self.scheduler.current()
        if self.holder is None:
            self.holder = me
            return
        self._waiters.append(me)
        await self.scheduler.block(me)
        assert self.holder == me, "lock handed to the wrong task"

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._waiters or self.scheduler.failed:
            self.reset()
            return
        chosen = self.scheduler.pick(self._waiters)
        self._waiters.remove(chosen)
        self.holder = chosen
        self.scheduler.unblock(chosen)
