"""Plug-in targets: race a user's own, unmodified mmap/munmap/mprotect implementation.

``--target package.module:factory`` imports ``package.module`` (with the current directory on
``sys.path``, as ``python -m`` would), calls ``factory(params)`` when it takes one positional
argument (the `mm.Params` of the run) or ``factory()`` when it takes none, and expects an
object with ``mmap(addr, length, prot, flags)``, ``munmap(addr, length)`` and
``mprotect(addr, length, prot)`` returning raw results (address or 0, ``-errno``): all three
plain functions or all three ``async def``.

Controlled (``--scheduler random | pct | exhaustive``, the default random): the calls run one
task at a time, and a strategy decides at every preemption point who runs next; the decisions
are recorded (DIR/schedule.jsonl), stamps are virtual, and `mmrace replay` reproduces the run.

- Sync: traced threads (`stress.harness._trace.TraceScheduler`): every line (or opcode) of the
  plug-in's own code is a point, and so is every ``mm.yield_point``; the plug-in's
  threading locks, conditions, events and semaphores are scheduler-aware.
- Async: the model target's controlled scheduler (`stress.harness._aplugin`): every await that
  reaches trio (a checkpoint, trio.sleep, a trio lock made by the plug-in) and every
  ``mm.ayield_point`` is a point, plus one at each invocation.

Free (``--scheduler free``, and automatically for a sync plug-in whose methods are not Python
code under its own path, e.g. a C or Rust extension): OS threads of a `WorkerPool` released by a
start gate (sync) or trio tasks (async), with seeded noise at the yield points; interleavings
are not controlled, and the run says so.

Every call has a deadline (``--call-timeout``, default 10 s): a call that reaches no preemption
point for that long, or is stuck when the time budget ends or after Ctrl-C, is recorded as
pending and the run ends UNKNOWN, naming the task, the call and where it was. A call of
``os._exit``, ``os.abort``, ``os.kill`` of this process or ``signal.raise_signal`` from the
plug-in's code raises `PluginExit` instead and is reported the same way; what a C extension
does to the process cannot be caught in-process (``mmrace run --isolate``).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import trio

import mm
from stress.agent import Call as WorkerCall
from stress.agent import Record, WorkerError, WorkerPool, op_args
from stress.errors import UsageError
from stress.harness._aplugin import (
    AsyncPluginScheduler,
    AsyncRound,
    CallDeadline,
    CallInterrupted,
    Uncontrolled,
    trio_patches,
)
from stress.harness._explore import DFSStrategy, Explorer, Prune, ReplayExplorer
from stress.harness._scheduler import (
    PARK,
    Deadlock,
    ReplayStrategy,
    ScheduleDiverged,
    Strategy,
    make_strategy,
)
from stress.harness._target import RaceOutcome, TargetOptions, really_raced
from stress.harness._threads import noise_hook
from stress.harness._trace import (
    Abort,
    PluginExit,
    Prefixes,
    TraceRound,
    TraceScheduler,
    adopt_foreign_locks,
    plugin_patches,
    prefixes_for,
    untraceable_methods,
)
from stress.history import MIN_RESULT, Operation

if TYPE_CHECKING:
    from workloads import Space

METHODS = ("mmap", "munmap", "mprotect")
NOISE_PROBABILITY = 0.5  # chance that a yield point actually yields (free async)
SCHEDULERS = ("random", "pct", "exhaustive", "free")
CALL_DEADLINE = 10.0


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


def _check_result(spec: str, op: mm.Op, value: object, task: int | None = None) -> int:
    """A plug-in's answer as a raw result (an address or 0, or -errno from -4095 to -1); any
    other answer is the plug-in's mistake, reported against the plug-in and the call (never
    written into the history)."""
    if isinstance(value, bool) or not isinstance(value, int):
        problem = f"{value!r:.60}, not an int"
    elif not MIN_RESULT <= value < 1 << 64:
        problem = f"{value}, out of range (an address below 2^64, or -errno from -4095 to -1)"
    else:
        return value
    who = "" if task is None else f"task {task}'s "
    raise UsageError(f"--target {spec}: {op.kind} returned {problem} (in {who}{op})")


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


class _Serial:
    """The strategy of setup and cleanup (one task): never consulted for a real choice."""

    name = "serial"

    def begin_round(self, round_index: int, tasks: int) -> None:
        pass

    def choose(self, runnable: Sequence[int], last: int | None) -> int:
        return runnable[0]


class PluginTarget:
    """A user's implementation, under the controlled scheduler (traced threads or controlled
    coroutines) or on free OS threads / trio tasks (see the module docstring)."""

    def __init__(
        self,
        options: TargetOptions,
        replay: Mapping[int, Sequence[int]] | None = None,
        plans: Mapping[int, int] | None = None,
    ) -> None:
        scheduler = options.scheduler
        if scheduler not in SCHEDULERS:
            raise ValueError(
                f"the {scheduler!r} scheduler is not one of a plug-in's ({', '.join(SCHEDULERS)})"
            )
        self.spec = options.spec
        self.name = f"plugin:{options.spec}"
        self.params = options.params if options.params is not None else mm.Params.reference()
        self.seed = options.seed
        self.noise = options.noise
        self.granularity = options.granularity
        self.call_deadline = options.timeout if options.timeout is not None else CALL_DEADLINE
        self.dead: str | None = None
        self.late_problems: list[str] = []
        self._deadline_at: float | None = None
        module_name = options.spec.partition(":")[0]
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        self.prefixes = Prefixes(prefixes_for(module_name))
        self._patches = contextlib.ExitStack()
        # in place before the import (module-level locks) and the factory (constructor locks)
        self._patches.enter_context(plugin_patches(self.prefixes, extra=trio_patches))
        try:
            self._factory = load_factory(options.spec)
            self.impl, self.is_async = build_impl(options.spec, self._factory, self.params)
        except BaseException:
            self._patches.close()
            raise
        self.untraceable = (
            [] if self.is_async else untraceable_methods(self.impl, self.prefixes, METHODS)
        )
        adopted, foreign = ([], []) if self.is_async else adopt_foreign_locks(self.impl)
        untraced = not self.is_async and len(self.untraceable) == len(METHODS)
        self.controlled = scheduler != "free" and not untraced
        if not self.controlled and (scheduler == "exhaustive" or replay is not None):
            self._patches.close()
            raise UsageError(
                f"--target {self.spec}: its methods are not Python code mmrace can trace "
                f"({', '.join(self.untraceable)}), so its schedules cannot be "
                + ("explored" if replay is None else "replayed")
            )
        self.clock = "steps" if self.controlled else "ns"
        strategy: Strategy | None = None
        self.explorer: Explorer | ReplayExplorer | None = None
        if self.controlled:
            if replay is not None:
                strategy = ReplayStrategy(replay)
            elif scheduler == "exhaustive":
                strategy = DFSStrategy()
            else:
                strategy = make_strategy(scheduler, options.seed, options.depth)
            if scheduler == "exhaustive":
                if replay is not None:
                    self.explorer = ReplayExplorer(plans or {}, on_begin=self._fresh)
                else:
                    assert isinstance(strategy, DFSStrategy)
                    self.explorer = Explorer(
                        strategy, options.preemptions, options.max_schedules, on_begin=self._fresh
                    )
        self._strategy = strategy
        self._traced: TraceScheduler | None = None
        self._async: AsyncPluginScheduler | None = None
        self._pool: WorkerPool | None = None
        self._pool_stuck = False
        self._choices: list[int] = []
        self._counts = {"rounds": 0, "preempted": 0, "blocked": 0, "decisions": 0}
        self.describe: dict[str, Any] = {
            "plugin": options.spec,
            "flavour": self._flavour(untraced),
            "controlled": self.controlled,
            "scheduler": scheduler if replay is None else "replay",
            "call_deadline": self.call_deadline,
            "traced": os.pathsep.join(self.prefixes.include) if self.controlled else None,
            "untraceable": self.untraceable or None,
            "adopted_locks": adopted or None,
            "foreign_locks": foreign or None,
            "scheduling": self._counts if self.controlled else None,
        }
        if scheduler == "pct":
            self.describe["pct_depth"] = options.depth
        if scheduler == "exhaustive":
            self.describe["preemptions"] = options.preemptions
        if not self.controlled:
            self.describe["noise"] = self.noise
        # one seeded noise stream for the whole run (a fresh one per round would repeat)
        self._async_hook = _trio_noise(self.seed) if self.noise and self.is_async else None

    def _flavour(self, untraced: bool) -> str:
        if self.is_async:
            return (
                "async (controlled coroutines, one at a time)"
                if self.controlled
                else "async (trio tasks: interleavings NOT controlled)"
            )
        if self.controlled:
            return f"sync (traced threads, one at a time, a point at every {self.granularity})"
        why = "its methods cannot be traced" if untraced else "--scheduler free"
        return f"sync (free OS threads: interleavings NOT controlled; {why})"

    @property
    def last_choices(self) -> list[int]:
        """The decisions of the last race (recorded in DIR/schedule.jsonl)."""
        return list(self._choices)

    def set_deadline(self, when: float) -> None:
        self._deadline_at = when

    def _fresh(self, pruned_before: bool) -> None:
        """Exhaustive: each schedule runs on a fresh object from the factory."""
        self.impl, _ = build_impl(self.spec, self._factory, self.params)
        if not self.is_async:
            adopt_foreign_locks(self.impl)

    async def open(self, tasks: int, space: Space) -> None:
        if self.controlled:
            assert self._strategy is not None
            if self.is_async:
                self._async = AsyncPluginScheduler(
                    self._strategy, self.prefixes, self.call_deadline
                )
            else:
                self._traced = TraceScheduler(
                    tasks,
                    self.prefixes,
                    self._strategy,
                    granularity=self.granularity,
                    call_deadline=self.call_deadline,
                )
        elif not self.is_async:
            seed, noise = self.seed, self.noise

            def init(index: int) -> None:
                mm.set_yield_hook(noise_hook(seed, index) if noise else None)

            self._pool = WorkerPool(tasks, init=init, name="mmrace-plugin")

    async def run_serial(self, round_index: int, ops: Sequence[mm.Op]) -> list[Operation]:
        records, problems, stopped = await self._run(round_index, [ops], serial=True)
        if stopped is not None:  # stuck, deadlocked, an exit: the run ends, UNKNOWN
            self.dead = stopped
            self.late_problems.extend(f"round {round_index} (serial): {p}" for p in problems)
            return records
        if problems:
            raise UsageError(f"--target {self.spec}: {problems[0]}")
        return records

    async def run_race(self, round_index: int, plans: Sequence[Sequence[mm.Op]]) -> RaceOutcome:
        records, problems, stopped = await self._run(round_index, plans, serial=False)
        if stopped is not None:
            self.dead = stopped
        return RaceOutcome(records, problems, really_raced(records))

    async def aclose(self) -> None:
        try:
            if self._traced is not None:
                self._traced.close()
                self._traced = None
            if self._pool is not None:
                pool, self._pool = self._pool, None
                if not self._pool_stuck:  # a stuck thread cannot be joined: abandoned
                    await trio.to_thread.run_sync(pool.close)
        finally:
            self._patches.close()

    async def _run(
        self, round_index: int, plans: Sequence[Sequence[mm.Op]], *, serial: bool
    ) -> tuple[list[Operation], list[str], str | None]:
        if self.dead is not None:  # nothing more runs (the runner stops after this round)
            return [], [], None
        if self._traced is not None:
            return await self._run_traced(round_index, plans, serial)
        if self._async is not None:
            return await self._run_controlled_async(round_index, plans, serial)
        if self.is_async:
            return await self._run_free_async(round_index, plans)
        return await self._run_threads(round_index, plans)

    def _records(
        self, round_index: int, per_task: Sequence[Sequence[list[Any]]]
    ) -> list[Operation]:
        out = []
        for task, recs in enumerate(per_task):
            for op, value, call, ret in recs:
                result = None if ret is None else _check_result(self.spec, op, value, task)
                out.append(Operation(task, op, result, call, ret, round_index))
        return out

    def _count(self, res: TraceRound | AsyncRound) -> None:
        counts = self._counts
        counts["rounds"] += 1
        counts["preempted"] += res.preemptions > 0
        counts["blocked"] += res.blocks > 0
        counts["decisions"] += len(res.choices)

    # --- sync, controlled ------------------------------------------------------------------

    async def _run_traced(
        self, round_index: int, plans: Sequence[Sequence[mm.Op]], serial: bool
    ) -> tuple[list[Operation], list[str], str | None]:
        sched = self._traced
        assert sched is not None
        impl = self.impl
        per_task: list[list[list[Any]]] = [[] for _ in plans]
        extra: list[str] = []
        tick = sched.tick

        def body(i: int) -> None:
            out = per_task[i]
            for op in plans[i]:
                sched.doing[i] = op  # (formatted only in a report)
                rec: list[Any] = [op, None, tick(), None]
                out.append(rec)
                try:
                    value = getattr(impl, op.kind)(*op_args(op))
                except Abort:
                    raise
                except PluginExit as exc:
                    extra.append(
                        f"the plug-in tried to end the process: {exc} (task {i}, {op}); "
                        "recorded as pending"
                    )
                    sched.stop_round("an exit attempt")
                    return
                except BaseException as exc:  # SystemExit too: reported, not an exit
                    extra.append(f"plug-in raised in task {i}: {type(exc).__name__}: {exc}")
                    return
                rec[1], rec[3] = value, tick()

        bodies = [lambda i=i: body(i) for i in range(len(plans))]
        with _interrupt_flag(sched):
            res = await sched.race(
                round_index, bodies, deadline=self._deadline_at, decide=not serial
            )
        if not serial:
            self._choices = res.choices
            self._count(res)
        return self._records(round_index, per_task), [*res.problems, *extra], res.stopped

    # --- async, controlled -----------------------------------------------------------------

    async def _run_controlled_async(
        self, round_index: int, plans: Sequence[Sequence[mm.Op]], serial: bool
    ) -> tuple[list[Operation], list[str], str | None]:
        sched = self._async
        assert sched is not None
        impl = self.impl
        per_task: list[list[list[Any]]] = [[] for _ in plans]
        extra: list[str] = []
        now = sched.tick
        passthrough = (
            Deadlock,
            Uncontrolled,
            CallDeadline,
            CallInterrupted,
            PluginExit,
            Prune,
            ScheduleDiverged,
        )

        async def body(i: int) -> None:
            out = per_task[i]
            for op in plans[i]:
                sched.doing[i] = op  # (formatted only in a report)
                rec: list[Any] = [op, None, now(), None]
                out.append(rec)
                await PARK  # a decision at each invocation (what mm.ENTER is to the cores)
                try:
                    value = await getattr(impl, op.kind)(*op_args(op))
                except passthrough:
                    raise
                except (Exception, SystemExit) as exc:
                    extra.append(f"plug-in raised in task {i}: {type(exc).__name__}: {exc}")
                    return
                rec[1], rec[3] = value, now()

        def make(i: int) -> Callable[[], Coroutine[Any, Any, None]]:
            return lambda: body(i)

        strategy = sched.strategy
        if serial:
            sched.strategy = _Serial()
        try:
            res = await sched.race_plugin(round_index, [make(i) for i in range(len(plans))])
        finally:
            sched.strategy = strategy
        if sched.interrupted is not None:
            # the round kept trio from running: let the run's Ctrl-C handling see the signal
            # now (else trio redelivers it when the run ends, as a KeyboardInterrupt)
            await trio.sleep(0.01)
        if not serial:
            self._choices = res.choices
            self._count(res)
        return self._records(round_index, per_task), [*res.problems, *extra], res.stopped

    # --- free: OS threads or trio tasks, not controlled ------------------------------------

    def _wait_seconds(self) -> float:
        """How long a free round may take: the call deadline, or less when the time budget
        ends sooner (trio's clock is not time.monotonic: a duration, not an instant)."""
        wait = self.call_deadline
        if self._deadline_at is not None:
            wait = min(wait, max(self._deadline_at - time.monotonic(), 0.05))
        return wait

    async def _run_threads(
        self, round_index: int, plans: Sequence[Sequence[mm.Op]]
    ) -> tuple[list[Operation], list[str], str | None]:
        assert self._pool is not None, "open() first"
        pool = self._pool
        bound: list[list[WorkerCall]] = [
            [(getattr(self.impl, op.kind), op_args(op)) for op in plan] for plan in plans
        ]
        problems: list[str] = []
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()

        def finished() -> None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(done.set)

        started = time.monotonic_ns()
        pool.start(bound, finished)
        try:
            with trio.move_on_after(self._wait_seconds()):
                await done.wait()
        finally:
            if not done.is_set():  # stuck threads cannot be stopped: abandon the pool
                self._pool_stuck = True
        if not done.is_set():
            raw = [list(task) for task in pool.last_records]
            records = self._pool_records(round_index, plans, raw)
            for task, (plan, got) in enumerate(zip(plans, raw, strict=False)):
                if len(got) < len(plan):
                    op = plan[len(got)]
                    records.append(Operation(task, op, None, started, None, round_index))
                    problems.append(
                        f"task {task}'s {op} did not return within {self.call_deadline:g} s "
                        "(free OS threads: it cannot be stopped; recorded as pending)"
                    )
            return records, problems, f"a call did not return within {self.call_deadline:g} s"
        try:
            raw = pool.results()
        except WorkerError as exc:
            raw = pool.last_records
            cause = exc.__cause__
            if isinstance(cause, PluginExit):
                problems.append(f"the plug-in tried to end the process: {cause} (task {exc.task})")
            else:
                problems.append(f"plug-in raised in {exc}")
        return self._pool_records(round_index, plans, raw), problems, None

    def _pool_records(
        self, round_index: int, plans: Sequence[Sequence[mm.Op]], raw: Sequence[Sequence[Record]]
    ) -> list[Operation]:
        records = []
        for task, (plan, got) in enumerate(zip(plans, raw, strict=False)):
            for op, (result, call, ret) in zip(plan, got, strict=False):
                value = None if ret is None else _check_result(self.spec, op, result, task)
                records.append(Operation(task, op, value, call, ret, round_index))
        return records

    async def _run_free_async(
        self, round_index: int, plans: Sequence[Sequence[mm.Op]]
    ) -> tuple[list[Operation], list[str], str | None]:
        per_task: list[list[Operation]] = [[] for _ in plans]
        problems: list[str] = []
        impl = self.impl
        clock = time.monotonic_ns

        async def one(task: int, plan: Sequence[mm.Op]) -> None:
            out = per_task[task]
            for op in plan:
                call = clock()
                out.append(Operation(task, op, None, call, None, round_index))
                try:
                    value = await getattr(impl, op.kind)(*op_args(op))
                except Exception as exc:
                    problems.append(f"plug-in raised in task {task}: {type(exc).__name__}: {exc}")
                    return
                except PluginExit as exc:
                    problems.append(f"the plug-in tried to end the process: {exc} (task {task})")
                    return
                try:
                    result = _check_result(self.spec, op, value, task)
                except UsageError as exc:  # raised below, outside the nursery
                    wrong.append(exc)
                    return
                out[-1] = Operation(task, op, result, call, clock(), round_index)

        wrong: list[UsageError] = []
        stopped = None
        wait = self._wait_seconds()
        with mm.yield_hooks(async_=self._async_hook), trio.move_on_after(wait) as scope:
            async with trio.open_nursery() as nursery:
                for task, plan in enumerate(plans):
                    nursery.start_soon(one, task, plan)
        if wrong:
            raise wrong[0]
        if scope.cancelled_caught:
            stopped = f"a call did not return within {self.call_deadline:g} s"
            for task, out in enumerate(per_task):
                if out and out[-1].ret is None:
                    problems.append(
                        f"task {task}'s {out[-1].op} did not return within "
                        f"{self.call_deadline:g} s (cancelled; recorded as pending)"
                    )
        return [rec for task_records in per_task for rec in task_records], problems, stopped


@contextlib.contextmanager
def _interrupt_flag(sched: TraceScheduler) -> Iterator[None]:
    """While a traced round runs: Ctrl-C also tells the scheduler (which tears a stuck round
    down), then does what it did before (stop the run after this round, or raise)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        sched.interrupted = time.monotonic()
        if callable(old):
            old(signum, frame)
        elif old == signal.SIG_DFL:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def make_target(options: TargetOptions) -> PluginTarget:
    """Registry factory for ``--target package.module:factory``."""
    return PluginTarget(options)


def make_replay_target(
    options: TargetOptions,
    schedule: Mapping[int, Sequence[int]],
    plans: Mapping[int, int] | None = None,
) -> PluginTarget:
    """A plug-in target that replays recorded decisions (and an exploration's plan rounds)."""
    return PluginTarget(options, replay=schedule, plans=plans)
