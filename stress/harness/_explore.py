"""Exhaustive exploration (``--scheduler exhaustive``): every schedule of a round, depth first.

Stateless DFS over a round's decision tree. Every schedule is a fresh execution of the round
(setup, race, cleanup, from a fresh core or a fresh plug-in object) that follows a prefix of
recorded choices and then the default: keep running the last task while it is runnable (no
preemption), else the lowest runnable index. After each execution the alternatives at every new
decision are pushed, deepest on top, so the stack is a DFS. Two bounds:

- the preemption bound K (CHESS, Musuvathi & Qadeer 2007): choosing another task while the last
  one could go on costs one preemption; switching away from a task that blocked or finished,
  and the first decision of a round, cost none. Every schedule with at most K preemptions is
  run; none with more;
- a cap on schedules per round plan (``--max-schedules``): reached with alternatives left, the
  search is *incomplete* and says so.

Pruning, the model target only: *state caching* at decision points (`ModelKey`). The key is
everything the future of the round depends on:

- the shared state: the core's `State` (hashable, canonical), its `scratch`, the SchedLock's
  holder and waiters (in order), which tasks are runnable / blocked, and the last task;
- each task's local state, which is not inspectable (a suspended coroutine), so it is
  represented by what determines it: the number of times the task was resumed and the exact
  sequence of values it read from shared state (every read of `core.state` outside `publish`,
  every `scratch` read). A task's code is deterministic given its reads, so equal reads and
  equal resumption counts mean equal local state;
- the history so far, as far as a verdict can see it: each task's results and, for each of its
  invocations, how many calls of every task had returned (the real-time order the
  linearizability check uses).

Two executions that reach equal keys have the same set of continuations, and with the history
part equal, the same set of verdicts: the second is pruned (its round is not recorded). With a
preemption bound the remaining budget matters too: a state is pruned only if it was explored
before with at least the same remaining budget. The LIFO stack finishes a state's subtree
before any schedule that branches off above it runs, so "seen" means "fully explored" (or the
cap was hit: then the result says incomplete).

For a plug-in no such key exists (the read set of a line of the user's code is unknown; tools
that track reads at opcode level miss e.g. ``key in dict``), so plug-ins get the preemption
bound and the cap only, which is sound: every schedule with at most K preemptions is run (at
the plug-in's granularity: lines or opcodes).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from stress.harness._scheduler import ControlledScheduler, Strategy

KeyFn = Callable[[Sequence[int], int | None], Any]


class Prune(Exception):
    """Raised by the strategy at a decision whose state was already explored."""


class DFSStrategy:
    """Follows `prefix`, then the default (no preemption); records every decision."""

    name = "exhaustive"

    def __init__(self) -> None:
        self.prefix: list[int] = []
        self.trace: list[tuple[tuple[int, ...], int | None, int]] = []
        self.key: KeyFn | None = None
        self.seen: dict[Any, int] | None = None
        self.budget = 0
        self.used = 0
        self.pruned_at: int | None = None

    def start(
        self, prefix: list[int], budget: int, key: KeyFn | None, seen: dict[Any, int] | None
    ) -> None:
        self.prefix, self.budget, self.key, self.seen = prefix, budget, key, seen
        self.trace = []
        self.used = 0
        self.pruned_at = None

    def begin_round(self, round_index: int, tasks: int) -> None:
        pass

    def choose(self, runnable: Sequence[int], last: int | None) -> int:
        k = len(self.trace)
        if self.key is not None and self.seen is not None and k >= len(self.prefix):
            key = self.key(runnable, last)
            left = self.budget - self.used
            best = self.seen.get(key)
            if best is not None and best >= left:
                self.pruned_at = k
                raise Prune
            self.seen[key] = left
        if k < len(self.prefix):
            chosen = self.prefix[k]
            if chosen not in runnable:
                raise RuntimeError(
                    f"decision {k}: task {chosen} is not runnable in {list(runnable)}: the "
                    "round does not run the same way twice (is the plug-in deterministic?)"
                )
        else:
            chosen = last if last is not None and last in runnable else runnable[0]
        if last is not None and last in runnable and chosen != last:
            self.used += 1
        self.trace.append((tuple(runnable), last, chosen))
        return chosen


class PlanStats:
    """The search over one round plan."""

    def __init__(self, plan_round: int) -> None:
        self.plan_round = plan_round
        self.schedules = 0  # executions, pruned ones included
        self.pruned = 0
        self.complete = False
        self.max_depth = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "round": self.plan_round,
            "schedules": self.schedules,
            "pruned": self.pruned,
            "complete": self.complete,
            "max_decisions": self.max_depth,
        }


class Explorer:
    """The DFS the runner drives: `begin()` before each schedule's setup, `end(pruned)` after
    its race; `plan_round` is the workload round being explored, `finished` says when to stop.

    `on_begin(pruned_before)` lets the target start each schedule from fresh state (and roll
    its virtual clock back after a pruned one, whose round is not recorded)."""

    replaying = False

    def __init__(
        self,
        strategy: DFSStrategy,
        bound: int,
        cap: int,
        *,
        key: KeyFn | None = None,
        on_begin: Callable[[bool], None] | None = None,
    ) -> None:
        self.strategy = strategy
        self.bound = bound
        self.cap = cap
        self.key = key
        self.on_begin = on_begin or (lambda pruned: None)
        self.plan_rounds = 1
        self.plan_round = 0
        self.plans: list[PlanStats] = [PlanStats(0)]
        self.finished = False
        self.stopped: str | None = None
        self._stack: list[list[int]] = [[]]
        self._seen: dict[Any, int] | None = {} if key is not None else None
        self._last_pruned = False

    def configure(self, plan_rounds: int | None) -> None:
        self.plan_rounds = max(plan_rounds or 1, 1)

    def begin(self) -> None:
        prefix = self._stack.pop()
        self.strategy.start(prefix, self.bound, self.key, self._seen)
        self.on_begin(self._last_pruned)

    def end(self, pruned: bool) -> None:
        stats = self.plans[-1]
        strategy = self.strategy
        trace, prefix = strategy.trace, strategy.prefix
        stats.schedules += 1
        stats.max_depth = max(stats.max_depth, len(trace))
        self._last_pruned = pruned
        end = len(trace)
        if pruned:
            stats.pruned += 1
            end = strategy.pruned_at if strategy.pruned_at is not None else end
        costs, used = [], 0
        for runnable, last, chosen in trace:
            costs.append(used)
            if last is not None and last in runnable and chosen != last:
                used += 1
        for k in range(len(prefix), end):
            runnable, last, chosen = trace[k]
            head = [c for _, _, c in trace[:k]]
            for alt in reversed(runnable):
                if alt == chosen:
                    continue
                preempts = last is not None and last in runnable and alt != last
                if costs[k] + preempts <= self.bound:
                    self._stack.append([*head, alt])
        if not self._stack:
            stats.complete = True
            self._next_plan()
        elif stats.schedules >= self.cap:
            self._next_plan()

    def _next_plan(self) -> None:
        if self.plan_round + 1 >= self.plan_rounds:
            self.finished = True
            return
        self.plan_round += 1
        self.plans.append(PlanStats(self.plan_round))
        self._stack = [[]]
        self._seen = {} if self.key is not None else None

    def stop(self, reason: str) -> None:
        """The run ended before the search did (a violation, the time budget, Ctrl-C)."""
        if not self.finished:
            self.stopped = reason
            self.finished = True

    @property
    def complete(self) -> bool:
        return len(self.plans) == self.plan_rounds and all(p.complete for p in self.plans)

    def to_json(self) -> dict[str, Any]:
        schedules = sum(p.schedules for p in self.plans)
        pruned = sum(p.pruned for p in self.plans)
        return {
            "preemptions": self.bound,
            "max_schedules": self.cap,
            "schedules": schedules,
            "pruned": pruned,
            "complete": self.complete,
            "stopped": self.stopped,
            "state_caching": self.key is not None,
            "round_plans": [p.to_json() for p in self.plans],
        }


class ReplayExplorer:
    """Replays a recorded exploration: the same plan round and fresh state for every recorded
    schedule (the strategy is a `ReplayStrategy` over the same rounds)."""

    replaying = True

    def __init__(
        self, plans: Mapping[int, int], on_begin: Callable[[bool], None] | None = None
    ) -> None:
        self._rounds = sorted(plans)
        self._plans = plans
        self._at = 0
        self.on_begin = on_begin or (lambda pruned: None)
        self.finished = not self._rounds
        self.plan_round = plans[self._rounds[0]] if self._rounds else 0

    def configure(self, plan_rounds: int | None) -> None:
        pass

    def begin(self) -> None:
        self.plan_round = self._plans[self._rounds[self._at]]
        self.on_begin(False)

    def end(self, pruned: bool) -> None:
        self._at += 1
        if self._at >= len(self._rounds):
            self.finished = True

    def stop(self, reason: str) -> None:
        self.finished = True

    def to_json(self) -> dict[str, Any]:
        return {"replay": True, "schedules": self._at}


# --- the model target's state key --------------------------------------------------------


def observing(cls: Any) -> Any:
    """A core class whose shared reads are logged per task (the local-state part of the key)."""

    class Observing(cls):
        _obs: list[list[Any]] | None = None
        _sched: ControlledScheduler | None = None
        _quiet = 0

        @property
        def state(self) -> Any:
            value = self.__dict__["_state"]
            if self._obs is not None and not self._quiet and self._sched is not None:
                t = self._sched.current()
                if t >= 0:
                    self._obs[t].append(value)
            return value

        @state.setter
        def state(self, value: Any) -> None:
            self.__dict__["_state"] = value

        def publish(self, change: Any) -> None:
            self._quiet += 1
            try:
                super().publish(change)
            finally:
                self._quiet -= 1

    Observing.__name__ = f"Observing{cls.__name__}"
    return Observing


class LoggedDict(dict[Any, Any]):
    """A variant core's `scratch` whose reads are logged like the state's."""

    def __init__(self, owner: Any) -> None:
        super().__init__()
        self.owner = owner

    def _log(self, value: Any) -> Any:
        o = self.owner
        if o._obs is not None and o._sched is not None and o._sched.current() >= 0:
            o._obs[o._sched.current()].append(("scratch", value))
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        return self._log(super().get(key, default))

    def __getitem__(self, key: Any) -> Any:
        return self._log(super().__getitem__(key))


class CountingScheduler(ControlledScheduler):
    """Counts each task's resumptions (its position in its code, with its reads)."""

    def __init__(self, strategy: Strategy) -> None:
        super().__init__(strategy)
        self.resumed: list[int] = []

    def _step(self, i: int, coro: Coroutine[Any, Any, None], live: set[int]) -> None:
        self.resumed[i] += 1
        super()._step(i, coro, live)


class ModelKey:
    """The state key of one model schedule (see the module docstring); `buffers[i]` are task
    i's (op, result) so far and `invoked[i]` the returned-call counts at its invocations."""

    def __init__(self, core: Any, sched: CountingScheduler, lock: Any, tasks: int) -> None:
        self.core, self.sched, self.lock = core, sched, lock
        self.buffers: list[list[tuple[Any, int]]] = [[] for _ in range(tasks)]
        self.invoked: list[list[tuple[int, ...]]] = [[] for _ in range(tasks)]
        sched.resumed = [0] * tasks
        core._obs = [[] for _ in range(tasks)]
        core._sched = sched

    def __call__(self, runnable: Sequence[int], last: int | None) -> Any:
        core, sched, lock = self.core, self.sched, self.lock
        scratch = core.__dict__.get("scratch")
        shared = tuple(sorted(dict.items(scratch))) if scratch is not None else ()
        tasks = tuple(
            (
                sched.resumed[i],
                tuple(core._obs[i]),
                tuple(self.buffers[i]),
                tuple(self.invoked[i]),
            )
            for i in range(len(self.buffers))
        )
        return (
            core.__dict__["_state"],
            shared,
            lock.holder,
            tuple(lock._waiters),
            tuple(sorted(runnable)),
            tuple(sorted(sched._blocked)),
            last,
            tasks,
        )
