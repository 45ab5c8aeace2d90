"""Async plug-ins under the model target's controlled scheduler.

`ControlledScheduler` drives a round's coroutines by hand and accepts only its own markers (PARK
at a yield point, BLOCK on its lock). A plug-in written against trio also awaits trio itself;
`AsyncPluginScheduler` makes every await that reaches the driver a decision point or a visible
block:

- ``trio.lowlevel.checkpoint()`` / ``trio.sleep(0)`` / any schedule point yields trio's
  `CancelShieldedCheckpoint` trap: a decision point, resumed with ``outcome.Value(None)`` as
  trio would;
- ``trio.Lock``, ``trio.StrictFIFOLock``, ``trio.Event`` and ``trio.Semaphore`` created by
  plug-in code (the factories check that plug-in code is on the creating stack) are dual-mode
  substitutes: in a controlled round they block with the scheduler's `block`/`unblock` (who is
  blocked is known, so a deadlock is a report, not a hang); elsewhere they are trio's own;
- ``trio.sleep(t)`` in a controlled round is a decision point (virtual time: a sleep only
  delays, so treating it as a yield explores a superset of the real interleavings);
- a decision point at every invocation (the model's cores have `mm.ENTER`): without it the start
  gate would run each task's first segment, up to its first await, in index order before
  anything is decided, and whole classes of schedules would never be explored;
- any other trap (a trio primitive made outside plug-in code, I/O, a thread) is reported: "task
  i awaited WaitTaskRescheduled, which the controlled scheduler cannot see, at file:line".

Deadline: a step (from one decision point to the next) that makes no progress for `deadline`
seconds (a ``time.sleep`` in async code, a blocking C call) is interrupted by a SIGALRM interval
timer that checks the step counter and raises `CallDeadline` inside the plug-in; the call is
pending, the run ends UNKNOWN. A Ctrl-C during a step that does not return within a grace period
raises `CallInterrupted` there. Both need the main thread (signals); elsewhere a blocking step
cannot be interrupted.
"""

from __future__ import annotations

import gc
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import outcome
import trio

from stress.harness._scheduler import BLOCK, PARK, ControlledScheduler, Strategy
from stress.harness._trace import INTERRUPT_GRACE, PluginExit, Prefixes, from_plugin

_active: list[AsyncPluginScheduler | None] = [None]


def _checkpoint_marker() -> Any:
    """What a coroutine yields to trio at a schedule point (trio's CancelShieldedCheckpoint
    trap), found by starting ``cancel_shielded_checkpoint`` once, outside any run."""
    coro = trio.lowlevel.cancel_shielded_checkpoint()
    try:
        return coro.send(None)
    finally:
        coro.close()


CancelShieldedCheckpoint = _checkpoint_marker()
_REAL: dict[str, Any] = {
    "Lock": trio.Lock,
    "StrictFIFOLock": trio.StrictFIFOLock,
    "Event": trio.Event,
    "Semaphore": trio.Semaphore,
    "sleep": trio.sleep,
}


class CallDeadline(BaseException):
    """Raised inside a plug-in step that ran past the deadline."""


class CallInterrupted(BaseException):
    """Raised inside a plug-in step that did not end after Ctrl-C."""


class Uncontrolled(Exception):
    """The plug-in awaited something the controlled scheduler cannot drive."""


def _ctx() -> tuple[AsyncPluginScheduler, int] | None:
    sched = _active[0]
    if sched is not None and sched.current() >= 0:
        return sched, sched.current()
    return None


class ALock:
    """trio.Lock (and StrictFIFOLock: every waiter is woken, the strategy picks who gets it)."""

    def __init__(self, real: Callable[[], Any]) -> None:
        self._real = real()
        self._holder: int | None = None
        self._waiters: list[int] = []

    async def acquire(self) -> None:
        ctx = _ctx()
        if ctx is None:
            await self._real.acquire()
            return
        sched, me = ctx
        await PARK  # trio.Lock.acquire is a checkpoint: a decision point
        while self._holder is not None:
            if self._holder == me:
                raise RuntimeError("attempt to re-acquire an already held Lock")
            self._waiters.append(me)
            await sched.wait_for(me, self)
        self._holder = me

    def acquire_nowait(self) -> None:
        ctx = _ctx()
        if ctx is None:
            self._real.acquire_nowait()
            return
        if self._holder is not None:
            raise trio.WouldBlock
        self._holder = ctx[1]

    def release(self) -> None:
        ctx = _ctx()
        if ctx is None:
            self._real.release()
            return
        if self._holder != ctx[1]:
            raise RuntimeError("can't release a Lock you don't own")
        self._holder = None
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            ctx[0].unblock(w)

    def locked(self) -> bool:
        return self._holder is not None or bool(self._real.locked())

    def reset(self) -> None:
        self._holder = None
        self._waiters.clear()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class AEvent:
    """trio.Event."""

    def __init__(self) -> None:
        self._real = _REAL["Event"]()
        self._flag = False
        self._waiters: list[int] = []

    def is_set(self) -> bool:
        return self._flag or bool(self._real.is_set())

    def set(self) -> None:
        self._flag = True
        self._real.set()
        sched = _active[0]
        waiters, self._waiters = self._waiters, []
        if sched is not None:
            for w in waiters:
                sched.unblock(w)

    async def wait(self) -> None:
        ctx = _ctx()
        if ctx is None:
            await self._real.wait()
            return
        sched, me = ctx
        await PARK
        while not self._flag:
            self._waiters.append(me)
            await sched.wait_for(me, self)

    def reset(self) -> None:
        self._waiters.clear()


class ASemaphore:
    """trio.Semaphore."""

    def __init__(self, initial_value: int, *, max_value: int | None = None) -> None:
        self._real = _REAL["Semaphore"](initial_value, max_value=max_value)
        self._value = initial_value
        self._waiters: list[int] = []

    @property
    def value(self) -> int:
        return self._value

    async def acquire(self) -> None:
        ctx = _ctx()
        if ctx is None:
            await self._real.acquire()
            return
        sched, me = ctx
        await PARK
        while self._value == 0:
            self._waiters.append(me)
            await sched.wait_for(me, self)
        self._value -= 1

    def release(self) -> None:
        ctx = _ctx()
        if ctx is None:
            self._real.release()
            return
        self._value += 1
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            ctx[0].unblock(w)

    def reset(self) -> None:
        self._waiters.clear()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


async def _sleep(seconds: float) -> None:
    if _ctx() is None:
        await _REAL["sleep"](seconds)
        return
    await PARK


def _factory(real: Callable[..., Any], make: Callable[..., Any]) -> Any:
    def factory(*args: Any, **kwargs: Any) -> Any:
        if from_plugin(sys._getframe(1)):
            return make(*args, **kwargs)
        return real(*args, **kwargs)

    factory.__wrapped__ = real  # type: ignore[attr-defined]
    return factory


def trio_patches() -> dict[tuple[Any, str], Any]:
    """The trio substitutes, for `stress.harness._trace.plugin_patches(extra=...)`."""
    return {
        (trio, "Lock"): _factory(_REAL["Lock"], lambda: ALock(_REAL["Lock"])),
        (trio, "StrictFIFOLock"): _factory(
            _REAL["StrictFIFOLock"], lambda: ALock(_REAL["StrictFIFOLock"])
        ),
        (trio, "Event"): _factory(_REAL["Event"], AEvent),
        (trio, "Semaphore"): _factory(_REAL["Semaphore"], ASemaphore),
        (trio, "sleep"): _sleep,
    }


def _where(coro: Any, prefixes: Prefixes) -> str:
    """The innermost plug-in frame of a suspended coroutine chain."""
    best = "?"
    obj = coro
    while obj is not None:
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "gi_frame", None)
        if frame is not None and prefixes.file(frame.f_code.co_filename):
            name = frame.f_code.co_filename.rsplit("/", 1)[-1]
            best = f"{name}:{frame.f_lineno} in {frame.f_code.co_name}"
        obj = getattr(obj, "cr_await", None) or getattr(obj, "gi_yieldfrom", None)
    return best


class AsyncRound:
    """What one async controlled round did."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.choices: list[int] = []
        self.steps = 0
        self.deadlock = False
        self.blocks = 0
        self.preemptions = 0
        self.stopped: str | None = None  # the round was torn down: why (the run must end)


class AsyncPluginScheduler(ControlledScheduler):
    """The model target's ControlledScheduler, taught trio's checkpoint trap and substitutes."""

    def __init__(self, strategy: Strategy, prefixes: Prefixes, deadline: float = 10.0) -> None:
        super().__init__(strategy)
        self.prefixes = prefixes
        self.deadline = deadline
        self.doing: dict[int, Any] = {}  # the call (op) each task is in, for reports
        self.blocks = 0
        self.steps = 0
        self.interrupted: float | None = None
        self._send: dict[int, Any] = {}
        self._waiting: dict[int, str] = {}
        self._step_started = 0.0
        self.failing = -1

    def _step(self, i: int, coro: Coroutine[Any, Any, None], live: set[int]) -> None:
        self._current = i
        self.steps += 1
        self._step_started = time.monotonic()
        try:
            marker = coro.send(self._send.pop(i, None))
        except StopIteration:
            live.discard(i)
            return
        except BaseException:
            self.failing = i  # the task whose step raised (for the report)
            raise
        if marker is PARK:
            self._runnable.add(i)
        elif marker is BLOCK:
            pass
        elif marker is CancelShieldedCheckpoint:
            self._runnable.add(i)
            self._send[i] = outcome.Value(None)
        elif trio.current_effective_deadline() == float("-inf"):
            raise CallInterrupted("the run was cancelled")
        else:
            raise Uncontrolled(
                f"task {i} awaited {type(marker).__name__}, which the controlled scheduler "
                f"cannot see (a trio primitive made outside plug-in code, I/O, a thread?), at "
                f"{_where(coro, self.prefixes)}"
            )

    def _decide(self, candidates: set[int] | Sequence[int]) -> int:
        last = self._last
        chosen = super()._decide(candidates)
        if last is not None and last in candidates and chosen != last:
            self.preemptions += 1
        return chosen

    async def wait_for(self, i: int, obj: Any) -> None:
        """Task i waits for a substitute primitive (not runnable until `unblock`)."""
        self.blocks += 1
        self._waiting[i] = self.prefixes.where(sys._getframe(1))
        await self.block(i)
        self._waiting.pop(i, None)

    async def race_plugin(
        self, round_index: int, bodies: Sequence[Callable[[], Coroutine[Any, Any, None]]]
    ) -> AsyncRound:
        """Race `bodies` (each awaits PARK before each of its calls); problems are reported in
        the result, not raised (a diverged replay or a pruned search is raised)."""
        from stress.harness._scheduler import Deadlock

        res = AsyncRound()
        self._send.clear()
        self._waiting.clear()
        self.steps = self.blocks = self.preemptions = 0
        self.interrupted = None
        self.failing = -1
        _active[0] = self
        timers = _Timers(self) if threading.current_thread() is threading.main_thread() else None
        gc_enabled = gc.isenabled()
        gc.disable()
        try:
            if timers is not None:
                timers.arm()
            await self.race(round_index, bodies)
        except Deadlock:
            waits = "; ".join(
                f"task {i} ({self.doing.get(i, 'call')}) waits at {w}"
                for i, w in sorted(self._waiting.items())
            )
            res.problems.append(f"deadlock: {waits}")
            res.deadlock = True
            res.stopped = "a deadlock"
        except Uncontrolled as exc:
            res.problems.append(str(exc))
            res.stopped = "an await the controlled scheduler cannot see"
        except CallDeadline as exc:
            res.problems.append(f"{exc} (recorded as pending)")
            res.stopped = "a call past its deadline"
        except CallInterrupted as exc:
            res.problems.append(f"interrupted (Ctrl-C): {exc} (recorded as pending)")
            res.stopped = "interrupted (Ctrl-C)"
        except PluginExit as exc:
            i = self.failing
            res.problems.append(
                f"the plug-in tried to end the process: {exc} (task {i}, "
                f"{self.doing.get(i, 'a call')}); recorded as pending"
            )
            res.stopped = "an exit attempt"
        finally:
            if timers is not None:
                timers.disarm()
            if gc_enabled:
                gc.enable()
            _active[0] = None
        res.choices = list(self.choices)
        res.steps = self.steps
        res.blocks = self.blocks
        res.preemptions = self.preemptions
        return res


class _Timers:
    """SIGALRM every deadline/4 while a round runs (raises CallDeadline in a step that made no
    progress for the deadline), and a SIGINT wrapper that remembers Ctrl-C, chains to the
    handler it replaced and raises CallInterrupted in a step stuck past the grace period. The
    timer and handlers in place before (pytest-timeout's, trio's) are restored afterwards."""

    def __init__(self, sched: AsyncPluginScheduler) -> None:
        self.sched = sched
        self.period = max(sched.deadline / 4, 0.01)
        self.last_steps = -1
        self.quiet = 0.0
        self.old_alarm: Any = None
        self.old_int: Any = None
        self.old_timer = (0.0, 0.0)
        self.armed_at = 0.0

    def arm(self) -> None:
        self.old_alarm = signal.signal(signal.SIGALRM, self._alarm)
        self.old_int = signal.signal(signal.SIGINT, self._interrupt)
        self.armed_at = time.monotonic()
        self.old_timer = signal.setitimer(signal.ITIMER_REAL, self.period, self.period)

    def disarm(self) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.old_alarm)
        signal.signal(signal.SIGINT, self.old_int)
        delay, interval = self.old_timer
        if delay > 0:  # someone else's timer (pytest-timeout): give it back, minus our time
            left = delay - (time.monotonic() - self.armed_at)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001), interval)

    def _alarm(self, signum: int, frame: Any) -> None:
        sched = self.sched
        if (
            sched.interrupted is not None
            and sched.current() >= 0
            and time.monotonic() - sched._step_started > INTERRUPT_GRACE
        ):  # Ctrl-C came while a call had just started, and it is still in it: tear it down
            self._stuck(frame)
        if sched.steps != self.last_steps or sched.current() < 0:
            self.last_steps, self.quiet = sched.steps, 0.0
            return
        self.quiet += self.period
        if self.quiet >= sched.deadline:
            i = sched.current()
            raise CallDeadline(
                f"task {i}'s {sched.doing.get(i, 'call')} did not return: it reached no decision "
                f"point for {sched.deadline:g} s, at {sched.prefixes.where(frame)}"
            )

    def _interrupt(self, signum: int, frame: Any) -> None:
        sched = self.sched
        sched.interrupted = time.monotonic()
        stuck = sched.current() >= 0 and time.monotonic() - sched._step_started > INTERRUPT_GRACE
        old = self.old_int
        if callable(old):
            old(signum, frame)  # the run's own handling (stop after this round, or raise)
        elif old == signal.SIG_DFL:
            raise KeyboardInterrupt
        if stuck:
            self._stuck(frame)
        if sched.current() >= 0:  # look again once the grace is over (see _alarm)
            signal.setitimer(signal.ITIMER_REAL, INTERRUPT_GRACE + 0.05, self.period)

    def _stuck(self, frame: Any) -> None:
        sched = self.sched
        i = sched.current()
        raise CallInterrupted(
            f"task {i}'s {sched.doing.get(i, 'call')} did not return, at "
            f"{sched.prefixes.where(frame)}"
        )
