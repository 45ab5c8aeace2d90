"""The controlled scheduler: tasks that run one at a time, in an order a strategy picks.

Every task parks at each yield point (`mm.ayield_point`) and the scheduler grants exactly one
task at a time, so the interleaving is a pure function of the strategy's decisions: the same
decisions give the same history, and recorded decisions replay it exactly. The tasks are the
round's coroutines, driven by hand inside the calling trio task (a switch is a coroutine
resumption, not a trip through trio's run loop, and trio's own order cannot leak in).

The lock (`SchedLock`) is scheduler-aware: a task that finds it held is *blocked*, not
runnable; on release the strategy picks which waiter gets it. Time is virtual: `tick()`
counts events, so stamps are exact and replayable.

Strategies: `RandomStrategy` (uniform among runnable tasks), `PCTStrategy` (probabilistic
concurrency testing, Burckhardt et al. 2010: random distinct priorities, d-1 priority change
points; the highest-priority runnable task runs) and `ReplayStrategy` (recorded choices).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

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


class _Marker:
    """What a parked coroutine yields to the driver: a yield point (PARK) or a lock (BLOCK)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __await__(self) -> Generator[_Marker, None, None]:
        yield self


PARK = _Marker("park")
BLOCK = _Marker("block")


class ControlledScheduler:
    """Runs a round's task bodies one at a time; `choices` records every decision.

    The bodies are coroutines driven by hand (`send`), not trio tasks: a switch costs a
    coroutine resumption instead of a trip through trio's run loop, and no order but the
    strategy's can exist. The price: inside a controlled round a body may await only the
    scheduler's yield points and `SchedLock` (which is all `mm.TrioCore` and its variants
    await); anything else is reported as an error.
    """

    def __init__(self, strategy: Strategy) -> None:
        self.strategy = strategy
        self.clock = 0
        self.choices: list[int] = []
        self.locks: list[SchedLock] = []
        self._runnable: set[int] = set()
        self._blocked: set[int] = set()
        self._current = -1
        self._arriving = False
        self._failed = False
        self._start = 0
        self._last: int | None = None

    def tick(self) -> int:
        """The virtual clock: one tick per stamp, so stamps are ordered as events happened.

        While tasks are arriving (each runs up to its first yield point, in index order)
        every stamp is the round's start instant: all calls were invoked together.
        """
        if self._arriving:
            return self._start
        self.clock += 1
        return self.clock

    def current(self) -> int:
        """The id of the running task (-1 outside a round)."""
        return self._current

    @property
    def failed(self) -> bool:
        """The current round is being torn down (an error)."""
        return self._failed

    async def race(self, round_index: int, bodies: Sequence[Callable[[], Awaitable[None]]]) -> None:
        """Run `bodies[i]` as task i under control; returns when all have finished.

        Every task first runs up to its first yield point (a start gate: all have invoked
        their first call before the first decision); then the strategy picks who goes on.
        """
        self.strategy.begin_round(round_index, len(bodies))
        self.choices = []
        self._runnable.clear()
        self._blocked.clear()
        self._failed = False
        self._last = None
        for lock in self.locks:
            lock.reset()
        self.clock += 1
        self._start = self.clock
        coros: list[Coroutine[Any, Any, None]] = [body() for body in bodies]  # type: ignore[misc]
        live = set(range(len(coros)))
        try:
            with mm.yield_hooks(async_=self._hook):
                self._arriving = True
                for i in range(len(coros)):
                    self._step(i, coros[i], live)
                self._arriving = False
                while live:
                    if not self._runnable:
                        raise Deadlock(f"tasks {sorted(self._blocked)} wait for a lock forever")
                    chosen = self._decide(self._runnable)
                    self._runnable.discard(chosen)
                    self._step(chosen, coros[chosen], live)
        except BaseException:
            self._failed = True
            for i in sorted(live):
                self._current = i
                coros[i].close()
            raise
        finally:
            self._arriving = False
            self._current = -1
        await trio.lowlevel.checkpoint()

    def _step(self, i: int, coro: Coroutine[Any, Any, None], live: set[int]) -> None:
        self._current = i
        try:
            marker = coro.send(None)
        except StopIteration:
            live.discard(i)
            return
        if marker is PARK:
            self._runnable.add(i)
        elif marker is not BLOCK:
            raise RuntimeError(
                f"task {i} awaited {marker!r} inside a controlled round: only yield points "
                "and the scheduler's lock may be awaited there"
            )

    def _decide(self, candidates: set[int] | Sequence[int]) -> int:
        try:
            chosen = self.strategy.choose(sorted(candidates), self._last)
        except BaseException:
            self._failed = True
            raise
        self.choices.append(chosen)
        self._last = chosen
        self.clock += 1
        return chosen

    async def _hook(self, name: str) -> None:
        if self._current >= 0:
            await PARK

    def pick(self, candidates: Sequence[int]) -> int:
        """A recorded decision among `candidates` (e.g. which waiter gets a released lock)."""
        return self._decide(candidates)

    async def block(self, i: int) -> None:
        """Task i found the lock held: it waits, not runnable, until `unblock`."""
        self._blocked.add(i)
        await BLOCK

    def unblock(self, i: int) -> None:
        """Task i may run again (it was handed the lock it waited for)."""
        if i in self._blocked:
            self._blocked.discard(i)
            self._runnable.add(i)


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
