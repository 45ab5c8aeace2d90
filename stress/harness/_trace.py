"""Controlled, replayable scheduling of unmodified sync plug-in code: traced threads, one at a time.

`TraceScheduler` runs a round's task bodies on N persistent worker threads so that exactly one
runs at a time. Control changes hands only at *preemption points*:

- every line (``granularity="opcode"``: every bytecode) executed in a frame whose code lives in
  the plug-in's own files (`Prefixes`; sys.settrace in each worker thread, whose global trace
  function returns None for every other frame, so the standard library, trio and mmrace run
  untraced and cost nothing);
- every explicit ``mm.yield_point(name)`` (a sync yield hook installed in each worker);
- a scheduler-aware lock, condition, event or semaphore that cannot be taken: the task becomes
  *blocked* (not runnable) until what it waits for changes.

At a point with two or more runnable tasks the strategy (`choose(runnable, last)`: random, PCT,
a recorded schedule, the exhaustive search's DFS) picks who runs next and the choice is recorded
(`TraceRound.choices`); a point with one runnable task is not a decision. The hand-off is direct,
thread to thread (the running worker releases the chosen worker's gate and blocks on its own),
so a decision that keeps the running task costs no switch at all. Start gate, as in the model
target: every task runs up to its first point in index order (no work done yet; every first
call is stamped with the round's start instant), then the decisions begin. Stamps are virtual
(`tick`), so the same decisions give the identical history.

The calling trio task is only a watchdog (`race`): it waits for the round's end in slices and
watches the step counter. When the running task reaches no point for `call_deadline` seconds (a
sleep in C, a blocking call the scheduler cannot see), or the run's time budget ends while it is
stuck, or Ctrl-C came and it does not stop, its call is recorded as pending, the place is named
from `sys._current_frames()`, the other tasks unwind (`Abort`, raised where they parked, one at a
time, so plug-in `finally` blocks never run concurrently) and the stuck thread is abandoned (a
daemon): the scheduler is *poisoned*, no further round can run. A spin loop inside traced code
is caught by `max_steps`. A cancelled watchdog (a second Ctrl-C) tears the round down the same
way. All live tasks blocked is a deadlock: reported with every task and where it waits.

Scheduler-aware primitives (`SLock`, `SRLock`, `SCondition`) are dual-mode: used by a controlled
task inside a round they block cooperatively; used by any other thread they are real locks.
`plugin_patches(prefixes)` installs caller-sensitive factories for ``threading.Lock``, ``RLock``
and ``Condition`` that hand out substitutes only when plug-in code is on the creating stack
(threading.Event, Semaphore, BoundedSemaphore, Barrier and queue.Queue build on those at
construction, so they become scheduler-aware too; ``queue.SimpleQueue`` becomes the pure-Python
one). `adopt_foreign_locks` swaps real locks reachable from the plug-in object that are provably
referenced from one place only. The same patches turn ``os._exit``, ``os.abort``,
``os.kill``/``killpg`` of this process and ``signal.raise_signal`` called from plug-in code into
`PluginExit`, reported instead of ending the process.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import trio

import mm

_REAL_LOCK = threading.Lock  # (this module installs the patches: these are the real ones)
_allocate = _REAL_LOCK
_get_ident = threading.get_ident
_RealLockType = type(_allocate())
_RealRLockType = type(threading.RLock())
_REAL_RLOCK = threading.RLock
_REAL_CONDITION = threading.Condition
_REAL_EXIT: dict[str, Callable[..., Any]] = {
    "_exit": os._exit,
    "abort": os.abort,
    "kill": os.kill,
    "killpg": os.killpg,
}
_REAL_RAISE_SIGNAL = signal.raise_signal

READY, RUNNING, BLOCKED, DONE = "ready", "running", "blocked", "done"
FOREIGN = -1
MAX_STEPS = 200_000
INTERRUPT_GRACE = 0.5  # seconds a running task gets to reach a point after Ctrl-C
UNWIND_GRACE = 0.5  # seconds the other tasks get to unwind after an abort
GRANULARITIES = ("line", "opcode")


class Abort(BaseException):
    """Raised inside a parked (or running) controlled task to unwind it when its round ends."""


class PluginExit(BaseException):
    """Plug-in code tried to end the process (os._exit, os.abort, a fatal signal to itself)."""


class SchedulerPoisoned(RuntimeError):
    """A task is stuck outside the scheduler's control; no further round can run."""


# --- which code is the plug-in's ------------------------------------------------------------

_HERE = os.path.dirname(os.path.realpath(__file__))
_STRESS = os.path.dirname(_HERE)
_OWN_DIRS = tuple(
    os.path.realpath(p)
    for p in (
        os.path.dirname(mm.__file__),
        _STRESS,
        os.path.join(os.path.dirname(_STRESS), "workloads"),
        os.path.join(os.path.dirname(_STRESS), "plots"),
        os.path.dirname(trio.__file__),
    )
)


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + os.sep)


class Prefixes:
    """The plug-in's own code: files under `include`, unless under a more specific `exclude`.

    mmrace's packages (mm, stress, workloads, plots) and trio are always excluded, except where
    an include is more specific (a plug-in module that lives inside mmrace, as the self-test's
    do): the longest matching prefix decides.
    """

    def __init__(self, include: Sequence[str], exclude: Sequence[str] = ()) -> None:
        self.include = tuple(os.path.realpath(p) for p in include)
        self.exclude = tuple(os.path.realpath(p) for p in (*exclude, *_OWN_DIRS))
        self._files: dict[str, bool] = {}

    def file(self, filename: str) -> bool:
        hit = self._files.get(filename)
        if hit is None:
            hit = self._files[filename] = self._compute(filename)
        return hit

    def _compute(self, filename: str) -> bool:
        if not filename or filename.startswith("<"):
            return False
        path = os.path.realpath(filename)
        inc = max((len(p) for p in self.include if _under(path, p)), default=-1)
        exc = max((len(p) for p in self.exclude if _under(path, p)), default=-1)
        return inc > exc

    def on_stack(self, frame: Any, depth: int = 40) -> bool:
        """Is plug-in code anywhere on the stack starting at `frame`?"""
        f = frame
        while f is not None and depth:
            if self.file(f.f_code.co_filename):
                return True
            f = f.f_back
            depth -= 1
        return False

    def where(self, frame: Any) -> str:
        """``file:line in function`` of the innermost plug-in frame (and the innermost frame
        when that is elsewhere, e.g. a C call's caller in the standard library)."""
        f = frame
        first = None
        while f is not None:
            code = f.f_code
            loc = f"{os.path.basename(code.co_filename)}:{f.f_lineno} in {code.co_name}"
            if first is None and not _own_file(code.co_filename):
                first = loc
            if self.file(code.co_filename):
                return loc if loc == first else f"{loc} (inside {first})"
            f = f.f_back
        return first or "?"


def _own_file(filename: str) -> bool:
    return filename.startswith(_HERE)


def prefixes_for(module_name: str) -> list[str]:
    """What to trace for ``--target module_name:factory``: the directory of its top-level
    package (the user's whole library), or the module's own file when it is a plain module or
    lives inside one of mmrace's packages. Empty when the module cannot be found."""
    import importlib.util

    top = module_name.partition(".")[0]
    try:
        spec = importlib.util.find_spec(top)
        if spec is not None and spec.origin and _under_own(spec.origin):
            spec = importlib.util.find_spec(module_name)
            if spec is None:
                return []
            return [spec.origin] if spec.origin else list(spec.submodule_search_locations or ())
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:  # a package (maybe a namespace package)
        return list(spec.submodule_search_locations)
    return [spec.origin] if spec.origin else []


def _under_own(path: str) -> bool:
    real = os.path.realpath(path)
    return any(_under(real, p) for p in _OWN_DIRS)


def untraceable_methods(impl: Any, prefixes: Prefixes, names: Sequence[str]) -> list[str]:
    """Methods of `impl` whose code is not Python under `prefixes` (C, Rust, elsewhere)."""
    bad = []
    for name in names:
        fn = getattr(impl, name, None)
        fn = getattr(fn, "__func__", fn)
        fn = getattr(fn, "__wrapped__", fn)
        code = getattr(fn, "__code__", None)
        if code is None or not prefixes.file(code.co_filename):
            bad.append(f"{type(impl).__name__}.{name} ({type(fn).__name__})")
    return bad


# --- the scheduler --------------------------------------------------------------------------


class _Task:
    __slots__ = (
        "body",
        "gate",
        "ident",
        "index",
        "state",
        "timed",
        "timed_out",
        "waiting_on",
        "where",
    )

    def __init__(self, index: int) -> None:
        self.index = index
        self.gate = _allocate()
        self.gate.acquire()
        self.state = DONE
        self.waiting_on: Any = None
        self.timed = False
        self.timed_out = False
        self.where = ""
        self.ident = 0
        self.body: Callable[[], None] | None = None


_controlled: dict[int, tuple[TraceScheduler, int]] = {}  # thread ident -> (scheduler, task)


def current_task() -> tuple[TraceScheduler, int] | None:
    """(scheduler, task index) when called from a controlled task inside a round."""
    ctx = _controlled.get(_get_ident())
    if ctx is not None and ctx[0].active:
        return ctx
    return None


class TraceRound:
    """What one traced round did."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.choices: list[int] = []
        self.steps = 0
        self.deadlock = False
        self.pending: list[int] = []  # tasks whose call never returned (stuck)
        self.blocks = 0  # times a task found a lock/condition it had to wait for
        self.preemptions = 0  # decisions that switched away from a task that could go on
        self.stopped: str | None = None  # the round was torn down: why (the run must end)


class TraceScheduler:
    """Runs up to N tasks one at a time on worker threads, switching at traced lines."""

    def __init__(
        self,
        tasks: int,
        prefixes: Prefixes,
        strategy: Any,
        *,
        granularity: str = "line",
        call_deadline: float = 10.0,
        max_steps: int = MAX_STEPS,
    ) -> None:
        if granularity not in GRANULARITIES:
            raise ValueError(f"granularity: {granularity!r} (choose from line, opcode)")
        self.n = tasks
        self.prefixes = prefixes
        self.strategy = strategy
        self.opcodes = granularity == "opcode"
        self.call_deadline = call_deadline
        self.max_steps = max_steps
        self.tasks = [_Task(i) for i in range(tasks)]
        self.active = False
        self.poisoned: str | None = None
        self.clock = 0
        self.steps = 0
        self.current = -1
        self.doing: list[Any] = [""] * tasks  # the call (op) each task is in, for reports
        self.interrupted: float | None = None  # monotonic time of a Ctrl-C during the round
        self._abort = False
        self._arriving = 0
        self._live = 0  # tasks in this round
        self._start = 0
        self._last: int | None = None
        self._mutex = _allocate()  # guards task states against foreign threads' releases
        self._over = False
        self._on_over: Callable[[], None] = _nothing
        self._result = TraceRound()
        self._error: BaseException | None = None  # the strategy raised (replay diverged, ...)
        self._closing = False
        self._threads = []
        for i in range(tasks):
            t = threading.Thread(target=self._worker, args=(i,), name=f"mmrace-traced-{i}")
            t.daemon = True
            t.start()
            self._threads.append(t)
        while any(t.ident == 0 for t in self.tasks):
            time.sleep(0.0005)

    # --- the virtual clock -------------------------------------------------------------------

    def tick(self) -> int:
        """Virtual stamps: while tasks arrive every stamp is the round's start instant."""
        if self.active and self._arriving < self._live:
            return self._start
        self.clock += 1
        return self.clock

    # --- worker side -------------------------------------------------------------------------

    def _worker(self, i: int) -> None:
        task = self.tasks[i]
        task.ident = _get_ident()
        _controlled[task.ident] = (self, i)
        prefixes_file = self.prefixes.file
        point = self._point
        opcodes = self.opcodes
        cache: dict[Any, bool] = {}

        def local(frame: Any, event: str, arg: Any) -> Any:
            if event == "line" or event == "opcode":
                point(i)
            return local

        def global_(frame: Any, event: str, arg: Any) -> Any:
            code = frame.f_code
            hit = cache.get(code)
            if hit is None:
                hit = cache[code] = prefixes_file(code.co_filename)
            if hit:
                if opcodes:
                    frame.f_trace_opcodes = True
                return local
            return None

        mm.set_yield_hook(lambda name: point(i))
        while True:
            task.gate.acquire()
            if self._closing:
                return
            body = task.body
            assert body is not None
            sys.settrace(global_)
            try:
                body()
            except Abort:
                pass
            except BaseException as exc:  # the body records per-call errors itself
                self._result.problems.append(f"task {i}: {type(exc).__name__}: {exc}")
            finally:
                sys.settrace(None)
            self._finish(i)

    def _point(self, i: int) -> None:
        """A preemption point of running task i."""
        if self._abort:
            raise Abort
        self.steps += 1
        if self.steps > self.max_steps:
            self._result.problems.append(
                f"task {i} ({self.doing[i]}): more than {self.max_steps:,} preemption points in "
                "one round (a livelock or spin loop?)"
            )
            self._result.stopped = "a livelock"
            self._abort = True
            raise Abort
        if self._arriving < self._live:
            self._arrive(i)
            return
        tasks = self.tasks
        runnable = [t.index for t in tasks if t.state is READY or t.index == i]
        if len(runnable) == 1:
            return
        chosen = self._decide(runnable, i)
        if chosen == i:
            return
        tasks[i].state = READY
        self._grant(chosen)
        self._park(i)

    def _arrive(self, i: int) -> None:
        """Start gate: task i reached its first point; the next task starts (no decision)."""
        self.tasks[i].state = READY
        self._arriving += 1
        if self._arriving < self._live:
            self._grant(self._arriving)
            self._park(i)
            return
        # every task has invoked its first call: the first decision, which preempts nobody
        self._schedule_from(i, last=None)

    def _decide(self, runnable: list[int], last: int | None) -> int:
        try:
            chosen = self.strategy.choose(runnable, last)
            if chosen not in runnable:
                raise RuntimeError(f"the strategy chose {chosen}, not one of {runnable}")
        except BaseException as exc:  # a diverged replay, a pruned search: end the round
            self._error = exc
            self._abort = True
            raise Abort from None
        self._result.choices.append(chosen)
        if last is not None and last in runnable and chosen != last:
            self._result.preemptions += 1
        self._last = chosen
        self.clock += 1
        return chosen

    def _grant(self, j: int) -> None:
        t = self.tasks[j]
        t.state = RUNNING
        self.current = j
        t.gate.release()

    def _park(self, i: int) -> None:
        self.tasks[i].gate.acquire()
        if self._abort:
            raise Abort

    def _schedule_from(self, i: int, last: int | None = -1) -> None:
        """Task i stops running (ready, blocked or done): pick the next one, hand over.
        `last` is the task a decision switches away from (default: i)."""
        with self._mutex:
            runnable = [t.index for t in self.tasks if t.state is READY]
            if not runnable:
                runnable = self._fire_timeout()
            if not runnable:
                if all(t.state is DONE for t in self.tasks):
                    self.current = -1
                    self._signal_over()
                    return
                self._deadlock()
                return
        previous = i if last == -1 else last
        chosen = runnable[0] if len(runnable) == 1 else self._decide(runnable, previous)
        if chosen == i:
            self.tasks[i].state = RUNNING
            return
        self._grant(chosen)
        if self.tasks[i].state is not DONE:
            self._park(i)

    def _fire_timeout(self) -> list[int]:
        """Nothing can run: the earliest timed wait (lowest index) times out (virtual time)."""
        for t in self.tasks:
            if t.state is BLOCKED and t.timed:
                t.timed_out = True
                t.state = READY
                _forget_waiter(t.waiting_on, self, t.index)
                t.waiting_on = None
                return [t.index]
        return []

    def _deadlock(self) -> None:
        blocked = [t for t in self.tasks if t.state is BLOCKED]
        foreign = [t for t in blocked if getattr(t.waiting_on, "_owner", None) == FOREIGN]
        if foreign:
            # a thread mmrace does not control holds what they wait for: wait for its release
            # (uncontrolled; the watchdog's deadline bounds it)
            self.current = -1
            return
        lines = [
            f"task {t.index} ({self.doing[t.index]}) waits for {_describe(t.waiting_on)} at "
            f"{t.where}"
            for t in blocked
        ]
        self._result.deadlock = True
        self._result.problems.append("deadlock: " + "; ".join(lines))
        self._result.stopped = "a deadlock"
        self._abort = True  # the caller (a blocking task) raises Abort and unwinds first

    def block(self, i: int, obj: Any, timed: bool) -> bool:
        """Task i waits for `obj` (which calls `wake`); returns False if it timed out."""
        if self._abort:
            raise Abort
        t = self.tasks[i]
        self._result.blocks += 1
        t.where = self.prefixes.where(sys._getframe(2))
        with self._mutex:
            t.state = BLOCKED
            t.waiting_on = obj
            t.timed = timed
            t.timed_out = False
        self._schedule_from(i)
        if self._abort:
            raise Abort
        if t.state is not RUNNING:  # it waits for a foreign thread's release
            self._park(i)
        t.timed = False
        t.waiting_on = None
        return not t.timed_out

    def wake(self, i: int) -> None:
        """Task i may go on (what it waited for changed); it runs when chosen."""
        with self._mutex:
            t = self.tasks[i]
            if t.state is BLOCKED:
                t.state = READY
                t.waiting_on = None
                if self.current == -1 and self.active and not self._abort:
                    # everyone was blocked on a foreign thread: restart scheduling here
                    runnable = [x.index for x in self.tasks if x.state is READY]
                    chosen = runnable[0] if len(runnable) == 1 else self._decide(runnable, None)
                    self._grant(chosen)

    def _finish(self, i: int) -> None:
        with self._mutex:
            self.tasks[i].state = DONE
        if self._abort:
            self._next_unwind()
            return
        if self._arriving < self._live:  # finished before reaching any point
            self._arriving += 1
            if self._arriving < self._live:
                self._grant(self._arriving)
                return
        self._schedule_from(i)
        if self._abort:  # a deadlock among the others: unwind them
            self._next_unwind()

    def _next_unwind(self) -> None:
        """Tear the round down: parked tasks unwind with Abort one at a time (each calls this
        again when it is done), so plug-in `finally` blocks never run concurrently."""
        with self._mutex:
            for t in self.tasks:
                if t.state in (READY, BLOCKED):
                    t.state = RUNNING
                    self.current = t.index
                    t.gate.release()  # it raises Abort where it parked
                    return
            self.current = -1
            pending = self._result.pending
            if all(t.state is DONE for t in self.tasks if t.index not in pending):
                self._signal_over()

    def stop_round(self, why: str) -> None:
        """Called by the running task: end the round (the others unwind), the run must end."""
        self._result.stopped = self._result.stopped or why
        self._abort = True

    def _signal_over(self) -> None:
        if not self._over:
            self._over = True
            self._on_over()

    # --- controller side (the trio task) -----------------------------------------------------

    async def race(
        self,
        round_index: int,
        bodies: Sequence[Callable[[], None]],
        *,
        deadline: float | None = None,
        decide: bool = True,
    ) -> TraceRound:
        """Run bodies[i] as task i (up to N); returns when all have finished or the round was
        torn down. `deadline` (monotonic seconds): the run's time budget ends there. With
        `decide` False (setup and cleanup: one task) the strategy is not consulted."""
        if self.poisoned:
            raise SchedulerPoisoned(self.poisoned)
        if not 1 <= len(bodies) <= self.n:
            raise ValueError(f"{len(bodies)} bodies for {self.n} worker threads")
        if decide:
            self.strategy.begin_round(round_index, len(bodies))
        self._result = result = TraceRound()
        self._error = None
        self._abort = False
        self.steps = 0
        self.interrupted = None
        self.clock += 1
        self._start = self.clock
        self._arriving = 0
        self._live = len(bodies)
        self._last = None
        for t in self.tasks:
            t.body = bodies[t.index] if t.index < len(bodies) else None
            t.state = READY if t.body is not None else DONE
            t.waiting_on = None
            t.timed = t.timed_out = False
        token = trio.lowlevel.current_trio_token()
        over = trio.Event()

        def on_over() -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(over.set)

        self._over = False
        self._on_over = on_over
        gc_enabled = gc.isenabled()
        gc.disable()  # a collection running __del__ in traced code would add points
        self.active = True
        try:
            self._grant(0)
            await self._watch(result, over, deadline)
        except BaseException:  # cancelled (a second Ctrl-C) or interrupted: tear down
            with trio.CancelScope(shield=True):
                await self._teardown(result, over, "interrupted")
            raise
        finally:
            self.active = False
            if gc_enabled:
                gc.enable()
            result.steps = self.steps
        if self._error is not None:
            raise self._error
        return result

    async def _watch(self, result: TraceRound, over: trio.Event, deadline: float | None) -> None:
        last_steps, since = -1, time.monotonic()
        slice_ = min(0.05, self.call_deadline / 4)
        while not self._over:
            with trio.move_on_after(slice_):
                await over.wait()
            if self._over:
                return
            now = time.monotonic()
            if self.steps != last_steps:
                last_steps, since = self.steps, now
            quiet = now - since
            why = None
            if self.interrupted is not None and now - self.interrupted >= INTERRUPT_GRACE:
                why = "interrupted (Ctrl-C)"
            elif deadline is not None and now >= deadline and quiet >= min(0.5, self.call_deadline):
                why = "the time budget ran out"
            elif quiet >= self.call_deadline:
                cur = self.current
                if (
                    cur >= 0
                    and not self.tasks[cur].gate.locked()
                    and quiet < 10 * self.call_deadline
                ):
                    # the grant is not consumed yet: the OS has not run that thread (a loaded
                    # machine); the plug-in is not at fault, wait longer
                    continue
                why = f"it reached no preemption point for {self.call_deadline:g} s"
            if why is not None:
                await self._teardown(result, over, why)
                return

    async def _teardown(self, result: TraceRound, over: trio.Event, why: str) -> None:
        """End the round now: the running task's call is pending (if it does not stop within a
        grace period), the others unwind; a thread that does not stop poisons the scheduler."""
        if self._over:
            return
        self._abort = True
        result.stopped = result.stopped or why
        cur = self.current
        if cur >= 0:
            with trio.move_on_after(INTERRUPT_GRACE if why.startswith("interrupted") else 0.05):
                await over.wait()  # it may stop at its next point
            if self._over:
                if why.startswith("interrupted"):
                    result.problems.append(f"{why}: the round was torn down")
                return
        frames = sys._current_frames()
        cur = self.current
        if cur >= 0:
            frame = frames.get(self.tasks[cur].ident)
            where = self.prefixes.where(frame) if frame is not None else "?"
            what = f"task {cur}'s {self.doing[cur] or 'call'} did not return: {why}, at {where}"
            result.pending.append(cur)
        else:
            waits = [
                f"task {t.index} ({self.doing[t.index]}) at {t.where}"
                for t in self.tasks
                if t.state is BLOCKED
            ]
            what = f"{why}: tasks wait for a thread mmrace does not control: " + "; ".join(waits)
            result.pending.extend(t.index for t in self.tasks if t.state is BLOCKED)
        result.problems.append(what + " (recorded as pending)")
        self.poisoned = what
        self._next_unwind()
        with trio.move_on_after(UNWIND_GRACE):
            await over.wait()
        stuck = [
            t.index for t in self.tasks if t.state is not DONE and t.index not in result.pending
        ]
        if stuck:
            result.problems.append(f"tasks {stuck} did not unwind")

    def close(self) -> None:
        """Stop the idle worker threads (a stuck one is abandoned: they are daemons)."""
        self._closing = True
        for t in self.tasks:
            if t.state is DONE:
                t.gate.release()


def _nothing() -> None:
    pass


# --- scheduler-aware primitives -------------------------------------------------------------


def _describe(obj: Any) -> str:
    if isinstance(obj, _Waiter):
        return "a condition's notify"
    owner = getattr(obj, "_owner", None)
    held = "a thread mmrace does not control" if owner == FOREIGN else f"task {owner}"
    return f"{type(obj).__name__} {id(obj):#x} (held by {held})"


def _forget_waiter(obj: Any, sched: Any, i: int) -> None:
    waiters = getattr(obj, "_waiters", None)
    if isinstance(waiters, list):
        with contextlib.suppress(ValueError):
            waiters.remove((sched, i))


class SLock:
    """threading.Lock, cooperative for controlled tasks, real for every other thread."""

    __slots__ = ("__weakref__", "_owner", "_real", "_waiters")

    def __init__(self) -> None:
        self._real = _allocate()
        self._owner: int | None = None
        self._waiters: list[tuple[TraceScheduler, int]] = []

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        ctx = current_task()
        if ctx is None:
            got = self._real.acquire(blocking, timeout)
            if got:
                self._owner = FOREIGN
            return got
        sched, i = ctx
        while True:
            if self._real.acquire(False):
                self._owner = i
                return True
            if not blocking:
                return False
            self._waiters.append((sched, i))
            if not sched.block(i, self, timed=timeout >= 0):
                return False

    def release(self) -> None:
        self._real.release()
        self._owner = None
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for sched, i in waiters:
                sched.wake(i)

    def locked(self) -> bool:
        return self._real.locked()

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _at_fork_reinit(self) -> None:
        self._real = _allocate()
        self._owner = None
        self._waiters = []

    def __repr__(self) -> str:
        return f"<SLock {'locked' if self.locked() else 'unlocked'} owner={self._owner}>"


class SRLock:
    """threading.RLock on top of SLock (owner + count)."""

    __slots__ = ("__weakref__", "_count", "_lock", "_owner_ident")

    def __init__(self) -> None:
        self._lock = SLock()
        self._owner_ident: int | None = None
        self._count = 0

    @property
    def _owner(self) -> int | None:
        return self._lock._owner

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = _get_ident()
        if self._owner_ident == me:
            self._count += 1
            return True
        if not self._lock.acquire(blocking, timeout):
            return False
        self._owner_ident = me
        self._count = 1
        return True

    __enter__ = acquire

    def release(self) -> None:
        if self._owner_ident != _get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self._count -= 1
        if not self._count:
            self._owner_ident = None
            self._lock.release()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _is_owned(self) -> bool:
        return self._owner_ident == _get_ident()

    def _release_save(self) -> tuple[int, int | None]:
        state = (self._count, self._owner_ident)
        self._count = 0
        self._owner_ident = None
        self._lock.release()
        return state

    def _acquire_restore(self, state: tuple[int, int | None]) -> None:
        self._lock.acquire()
        self._count, self._owner_ident = state

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()
        self._owner_ident = None
        self._count = 0


class _Waiter:
    """A condition waiter: a real lock for a foreign thread, a task index for a controlled one."""

    __slots__ = ("_owner", "notified", "real", "sched", "task")

    def __init__(self, ctx: tuple[TraceScheduler, int] | None) -> None:
        self.notified = False
        self._owner = None
        self.sched: TraceScheduler | None
        if ctx is None:
            self.real: Any = _allocate()
            self.real.acquire()
            self.sched = None
            self.task = -1
        else:
            self.real = None
            self.sched, self.task = ctx

    def release(self) -> None:
        self.notified = True
        if self.real is not None:
            self.real.release()
        elif self.sched is not None:
            self.sched.wake(self.task)


class SCondition:
    """threading.Condition whose waits are cooperative for controlled tasks."""

    def __init__(self, lock: Any = None) -> None:
        if lock is None:
            lock = SRLock()
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release
        self._waiters: collections.deque[_Waiter] = collections.deque()

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)

    def _is_owned(self) -> bool:
        owned = getattr(self._lock, "_is_owned", None)
        if owned is not None:
            return bool(owned())
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def _release_save(self) -> Any:
        save = getattr(self._lock, "_release_save", None)
        if save is not None:
            return save()
        self._lock.release()
        return None

    def _acquire_restore(self, state: Any) -> None:
        restore = getattr(self._lock, "_acquire_restore", None)
        if restore is not None:
            restore(state)
        else:
            self._lock.acquire()

    def wait(self, timeout: float | None = None) -> bool:
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        ctx = current_task()
        waiter = _Waiter(ctx)
        self._waiters.append(waiter)
        saved = self._release_save()
        try:
            if ctx is None:
                if timeout is None:
                    waiter.real.acquire()
                    return True
                if timeout > 0:
                    return bool(waiter.real.acquire(True, timeout))
                return bool(waiter.real.acquire(False))
            sched, i = ctx
            got = waiter.notified or sched.block(i, waiter, timed=timeout is not None)
            return got or waiter.notified
        finally:
            self._acquire_restore(saved)
            if not waiter.notified:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        result = predicate()
        while not result:
            if not self.wait(timeout):
                return predicate()
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        while self._waiters and n:
            self._waiters.popleft().release()
            n -= 1

    def notify_all(self) -> None:
        self.notify(len(self._waiters))

    notifyAll = notify_all


# --- patches while plug-ins are loaded and run ----------------------------------------------

_active: list[Prefixes] = []  # every open plug-in target's prefixes
_saved: list[tuple[Any, str, Any]] = []


def from_plugin(frame: Any, depth: int = 40) -> bool:
    """Is the code of an open plug-in on the stack at `frame`?"""
    return any(p.on_stack(frame, depth) for p in _active)


def _factory(real: Callable[..., Any], substitute: Callable[..., Any]) -> Any:
    def make(*args: Any, **kwargs: Any) -> Any:
        if from_plugin(sys._getframe(1)):
            return substitute(*args, **kwargs)
        return real(*args, **kwargs)

    make.__name__ = getattr(real, "__name__", "factory")
    make.__wrapped__ = real  # type: ignore[attr-defined]
    return make


def _exit_guards() -> dict[tuple[Any, str], Any]:
    me = os.getpid()

    def _exit(status: int) -> None:
        if from_plugin(sys._getframe(1), 60):
            raise PluginExit(f"os._exit({status})")
        _REAL_EXIT["_exit"](status)

    def abort() -> None:
        if from_plugin(sys._getframe(1), 60):
            raise PluginExit("os.abort()")
        _REAL_EXIT["abort"]()

    def kill(pid: int, sig: int) -> None:
        if pid in (me, 0, -os.getpgid(0)) and from_plugin(sys._getframe(1), 60):
            raise PluginExit(f"os.kill({pid}, {_signame(sig)})")
        _REAL_EXIT["kill"](pid, sig)

    def killpg(pgid: int, sig: int) -> None:
        if pgid in (0, os.getpgid(0)) and from_plugin(sys._getframe(1), 60):
            raise PluginExit(f"os.killpg({pgid}, {_signame(sig)})")
        _REAL_EXIT["killpg"](pgid, sig)

    def raise_signal(sig: int) -> None:
        if from_plugin(sys._getframe(1), 60):
            raise PluginExit(f"signal.raise_signal({_signame(sig)})")
        _REAL_RAISE_SIGNAL(sig)

    return {
        (os, "_exit"): _exit,
        (os, "abort"): abort,
        (os, "kill"): kill,
        (os, "killpg"): killpg,
        (signal, "raise_signal"): raise_signal,
    }


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


def _install(extra: dict[tuple[Any, str], Any]) -> None:
    import queue

    patches: dict[tuple[Any, str], Any] = {
        (threading, "Lock"): _factory(_REAL_LOCK, SLock),
        (threading, "RLock"): _factory(_REAL_RLOCK, SRLock),
        (threading, "Condition"): _factory(_REAL_CONDITION, SCondition),
        **_exit_guards(),
        **extra,
    }
    py_simple = getattr(queue, "_PySimpleQueue", None)
    if py_simple is not None:  # the C SimpleQueue blocks invisibly
        patches[(queue, "SimpleQueue")] = _factory(queue.SimpleQueue, py_simple)
    for (mod, name), value in patches.items():
        _saved.append((mod, name, getattr(mod, name)))
        setattr(mod, name, value)


@contextlib.contextmanager
def plugin_patches(
    prefixes: Prefixes, extra: Callable[[], dict[tuple[Any, str], Any]] | None = None
) -> Iterator[None]:
    """Scheduler-aware primitives for plug-in code, process exits from plug-in code raise.

    Installed when the first plug-in target opens (before its module is imported, so module-
    level locks are covered), removed when the last one closes; `extra()` adds patches (the
    async scheduler's trio substitutes)."""
    if not _active:
        _install(extra() if extra is not None else {})
    _active.append(prefixes)
    try:
        yield
    finally:
        _active.remove(prefixes)
        if not _active:
            while _saved:
                mod, name, value = _saved.pop()
                setattr(mod, name, value)


_REAL_SYNC_TYPES = (_RealLockType, _RealRLockType)


def foreign_locks(root: Any, depth: int = 4) -> list[tuple[str, Any, Any, Any]]:
    """Real (not scheduler-aware) locks reachable from `root`: (path, container, key, lock)."""
    found: list[tuple[str, Any, Any, Any]] = []
    seen: set[int] = set()

    def visit(obj: Any, path: str, d: int) -> None:
        if id(obj) in seen or d < 0:
            return
        seen.add(id(obj))
        items: list[tuple[Any, Any]]
        if isinstance(obj, dict):
            items = list(obj.items())
        elif isinstance(obj, list):
            items = list(enumerate(obj))
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            items = list(vars(obj).items())
        else:
            return
        for key, value in items:
            sub = f"{path}[{key!r}]" if isinstance(obj, (dict, list)) else f"{path}.{key}"
            if isinstance(value, _REAL_SYNC_TYPES) or (
                isinstance(value, _REAL_CONDITION)
                and isinstance(getattr(value, "_lock", None), _REAL_SYNC_TYPES)
            ):
                found.append((sub, obj, key, value))
            elif isinstance(value, (dict, list)) or (
                hasattr(value, "__dict__") and not isinstance(value, (type, type(sys)))
            ):
                visit(value, sub, d - 1)

    visit(root, type(root).__name__, depth)
    return found


def adopt_foreign_locks(root: Any) -> tuple[list[str], list[str]]:
    """Replace real locks referenced from exactly one place (and unheld) by substitutes.

    `sys.getrefcount` proves that no closure, default argument or other object holds the same
    lock, so swapping the attribute cannot split one lock into two. Returns (adopted, left)."""
    adopted, left = [], []
    for path, container, key, lock in foreign_locks(root):
        # references: the container's slot, `lock` here, the tuple in the list, getrefcount's
        refs = sys.getrefcount(lock) - 3
        if isinstance(lock, _REAL_CONDITION):
            left.append(f"{path} (a threading.Condition built on a real lock)")
            continue
        held = isinstance(lock, _RealLockType) and lock.locked()
        if refs != 1 or held:
            left.append(f"{path} ({refs} references)" if refs != 1 else f"{path} (held)")
            continue
        new = SLock() if isinstance(lock, _RealLockType) else SRLock()
        if isinstance(container, (dict, list)):
            container[key] = new
        else:
            setattr(container, key, new)
        adopted.append(path)
    return adopted, left
