"""The worker loop: N OS threads that run one round of planned calls each, released together.

Shared by the in-process kernel target (`stress.harness._kernel`), the sync plug-in target and
the agent child (`python -m stress.agent`). The threads are created once and reused for every
round; each round they wait at a start gate, run their own list of calls back to back and
record each call's result and monotonic call/return nanoseconds into their own buffer (no
shared structure is touched while the race runs); the last thread to finish reports the end.

`start(plans, on_done)` never blocks (a trio thread may call it; `on_done` then hands the end
back with `TrioToken.run_sync_soon`); `run_round(plans)` is the blocking form.

Start gates:
- ``"barrier"``: the coordinator wakes the workers one after the other (each blocks on a lock
  of its own; a condition broadcast, as in `threading.Barrier`, does the same), the default;
- ``"spin"``: workers poll a round counter, giving the GIL away (`time.sleep(0)`) each turn;
- ``"hybrid"``: the same wake-up, then each worker waits (polling) until all have woken, so no
  thread starts its calls before every other one is runnable.
docs/targets.md gives the measured overlap of each.

A call that raises is recorded as pending (result None) and ends that thread's round; the
first exception is re-raised by `results()` / `run_round`. This module imports nothing from
the rest of mmrace: it also runs inside emulators and sandboxes.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

# One planned call: a function and its arguments (already bound, so the hot loop does no lookups).
Call = tuple[Callable[..., int], tuple[Any, ...]]
# One recorded call: (result or None if it raised, call ns, return ns or None if it raised).
Record = tuple[int | None, int, int | None]

GATES = ("barrier", "spin", "hybrid")


class WorkerError(Exception):
    """A call raised inside a worker thread; ``task`` names the thread, ``__cause__`` the error."""

    def __init__(self, task: int, exc: BaseException) -> None:
        super().__init__(f"task {task}: {type(exc).__name__}: {exc}")
        self.task = task


class WorkerPool:
    """`threads` reusable OS threads; each round thread i runs `plans[i]` (see module doc).

    `init(index)` runs first in each new thread (e.g. to install a yield hook, which lives in a
    context variable and so must be set per thread). One round at a time.

    Hand-offs are plain `threading.Lock`s used as binary semaphores (C-level, no Python
    `Condition` bookkeeping): each worker blocks on its own gate lock, which the coordinator
    releases to start a round (the same sequential wake-up a condition broadcast does); the
    last worker to finish, found with an atomic counter, calls `on_done` (`run_round`: releases
    the lock the coordinator blocks on).
    """

    def __init__(
        self,
        threads: int,
        *,
        gate: str = "barrier",
        init: Callable[[int], None] | None = None,
        name: str = "mmrace-worker",
        inline: bool = False,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads: need at least 1, got {threads}")
        if gate not in GATES:
            raise ValueError(f"gate: {gate!r} is not one of {', '.join(GATES)}")
        self.threads = threads
        self.gate = gate
        self._init = init
        self.inline = inline  # run_round runs plans[0] in the calling thread
        self._first = 1 if inline else 0
        self._workers_count = threads - self._first
        self._gates = [_locked() for _ in range(threads)]  # released once per round
        self._worker_gates = self._gates[self._first :]
        self._done_lock = _locked()  # run_round blocks here until the last worker releases it
        self._generation = 0  # the spin gate polls it
        self._closing = False
        self._busy = False
        self._plans: Sequence[Sequence[Call]] = ()
        self._records: list[list[Record]] = []
        self._errors: list[BaseException | None] = [None] * threads
        self._failed = False  # a call raised in the last round (then `_errors` says where)
        self._finished: itertools.count[int] = itertools.count(1)
        self._woken: itertools.count[int] = itertools.count()
        self._on_done: Callable[[], None] = _nothing
        self._blocking = False
        self._workers = [
            threading.Thread(target=self._main, args=(i,), name=f"{name}-{i}", daemon=True)
            for i in range(self._first, threads)
        ]
        for worker in self._workers:
            worker.start()

    # --- coordinator side ------------------------------------------------------------------

    def start(self, plans: Sequence[Sequence[Call]], on_done: Callable[[], None]) -> None:
        """Release a round (never blocks); the last worker to finish calls `on_done()`."""
        self._release(plans, on_done, blocking=False)

    def _release(
        self, plans: Sequence[Sequence[Call]], on_done: Callable[[], None], *, blocking: bool
    ) -> None:
        if len(plans) > self.threads:
            raise ValueError(f"{len(plans)} task plans for {self.threads} worker threads")
        if self._closing or self._busy:
            raise RuntimeError("worker pool is closed" if self._closing else "round in progress")
        self._busy = True
        self._plans = plans
        self._records = [[] for _ in range(self.threads)]
        if self._failed:
            self._errors = [None] * self.threads
            self._failed = False
        self._finished = itertools.count(1)
        if self.gate == "hybrid":
            self._woken = itertools.count(1 + self._first)
        self._on_done = on_done
        self._blocking = blocking
        self._generation += 1
        if self.gate != "spin":
            for gate in self._worker_gates:
                gate.release()

    def results(self) -> list[list[Record]]:
        """The finished round's records (raises `WorkerError` for the first call that raised)."""
        if not self._failed:
            return self._records
        for task, error in enumerate(self._errors):
            if error is not None:
                raise WorkerError(task, error) from error
        return self._records

    @property
    def last_records(self) -> list[list[Record]]:
        """The last round's records, including those of a round that raised."""
        return self._records

    def run_round(self, plans: Sequence[Sequence[Call]]) -> list[list[Record]]:
        """Blocking form of `start` + wait + `results`; with `inline`, the calling thread runs
        `plans[0]` itself right after releasing the others (one thread hand-off fewer)."""
        if not self._workers_count:  # inline with one thread: nothing to hand off
            if self._closing or self._busy:
                raise RuntimeError(
                    "worker pool is closed" if self._closing else "round in progress"
                )
            self._records = [[]]
            if self._failed:
                self._errors, self._failed = [None], False
            if plans:
                self._run(0, plans[0])
            return self.results()
        self._release(plans, self._done_lock.release, blocking=True)
        if self.inline and plans:
            self._run(0, plans[0])
        self._done_lock.acquire()
        self._busy = False
        return self.results()

    def close(self) -> None:
        """Stop and join the threads (idempotent; not during a round)."""
        if self._closing:
            return
        self._closing = True
        self._generation += 1
        for gate in self._worker_gates:
            gate.release()
        for worker in self._workers:
            worker.join()

    # --- worker side -----------------------------------------------------------------------

    def _main(self, index: int) -> None:
        if self._init is not None:
            self._init(index)
        seen = 0
        gate = self._gates[index]
        spin = self.gate == "spin"
        hybrid = self.gate == "hybrid"
        while True:
            if spin:
                while self._generation == seen and not self._closing:
                    time.sleep(0)
            else:
                gate.acquire()
            seen = self._generation
            if self._closing:
                return
            if hybrid:
                woken, target = self._woken, self.threads
                while next(woken) < target:
                    time.sleep(0)
            plans = self._plans
            if index < len(plans):
                self._run(index, plans[index])
            if next(self._finished) == self._workers_count:  # atomic: the last one out
                if not self._blocking:
                    self._busy = False  # start(): nobody waits to do it
                self._on_done()

    def _run(self, index: int, calls: Sequence[Call]) -> None:
        out = self._records[index]
        clock = time.monotonic_ns
        for fn, args in calls:
            call = clock()
            try:
                result = fn(*args)
            except BaseException as exc:  # recorded, re-raised by results()
                out.append((None, call, None))
                self._errors[index] = exc
                self._failed = True
                return
            out.append((result, call, clock()))


def _locked() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


def _nothing() -> None:
    pass


def op_args(op: Any) -> tuple[int, ...]:
    """The positional arguments of a call for an op-like value (kind, addr, length, prot, flags)."""
    if op.kind == "mmap":
        return (op.addr, op.length, op.prot, op.flags)
    if op.kind == "munmap":
        return (op.addr, op.length)
    return (op.addr, op.length, op.prot)


def overlap(records: Sequence[Sequence[Record]]) -> int:
    """The largest number of calls of different threads in flight at one instant.

    A call without a return time counts as in flight until the end of the round. 1 (or 0 for an
    empty round) means the calls never overlapped: the gate did not make them race.
    """
    points: list[tuple[int, int]] = []
    for task in records:
        for _result, call, ret in task:
            points.append((call, 1))
            points.append((ret if ret is not None else 1 << 62, -1))
    points.sort()  # at equal times the -1 (a return) sorts first: touching is not overlapping
    best = live = 0
    for _t, step in points:
        live += step
        best = max(best, live)
    return best


def spans_overlap(raw: Sequence[Sequence[Record]]) -> bool:
    """Did the round really race? `stress.harness._target.really_raced` on the worker buffers:
    each task's span runs from its first call to its last return (calls run in order, a pending
    one is last and never ends); raced when at least two tasks ran and all spans share an
    instant."""
    ran = 0
    latest_start = 0
    earliest_end: int | None = None
    for got in raw:
        if got:
            ran += 1
            start, end = got[0][1], got[-1][2]
            if ran == 1 or start > latest_start:
                latest_start = start
            if end is not None and (earliest_end is None or end < earliest_end):
                earliest_end = end
    return ran >= 2 and (earliest_end is None or latest_start < earliest_end)
