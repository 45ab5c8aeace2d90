"""`check`: split a history into the model's independent partitions and search each one.

Partitions are checked smallest first and the check stops at the first violation (a history
is linearizable iff each of its partitions is, when the model's partition is sound). Many or
large partitions go to a process pool; the model must therefore be picklable. A time budget
covers the whole check: when it runs out the verdict is UNKNOWN, never OK.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Sequence

from stress.checker import _search
from stress.checker._search import (
    OK,
    TIMEOUT,
    VIOLATION,
    PartOutcome,
    check_partition,
    validate,
)
from stress.checker._types import CheckResult, Event, Model, Verdict
from stress.errors import counted

# Below this many events in all (or with a single partition) the pool's start-up costs more
# than it saves.
POOL_MIN_EVENTS = 3000
POOL_MIN_PARTITIONS = 4

Progress = Callable[[int, int], None]


def check(
    model: Model,
    events: Sequence[Event],
    *,
    timeout: float | None = None,
    partitioned: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
    pool_min_events: int = POOL_MIN_EVENTS,
    pool_min_partitions: int = POOL_MIN_PARTITIONS,
) -> CheckResult:
    """Is ``events`` linearizable with respect to ``model``?

    ``timeout`` (seconds) bounds the whole check; ``partitioned=False`` ignores the model's
    partition; ``workers=1`` forces a serial check, ``workers=k`` a pool of k processes, None
    lets the engine decide: a pool of 2 for at least ``pool_min_events`` events in at least
    ``pool_min_partitions`` partitions (the verdict never depends on it). ``progress(done,
    total)`` is called after each partition.
    """
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    events = list(events)
    validate(events)
    parts = [list(p) for p in (model.partition(events) if partitioned else [events]) if p]
    parts.sort(key=len)
    total = len(parts)
    if workers is None:
        big = len(events) >= pool_min_events and total >= pool_min_partitions
        workers = min(2, os.cpu_count() or 1) if big else 1
    if workers > 1 and total > 1 and _picklable(model):
        outcomes = _run_pool(model, parts, deadline, workers, progress)
    else:
        outcomes = _run_serial(model, parts, deadline, progress)
    seconds = time.monotonic() - start
    checked = sum(1 for o in outcomes if o is not None and o.status != TIMEOUT)

    def result(verdict: Verdict, reason: str, outcome: PartOutcome | None = None) -> CheckResult:
        return CheckResult(
            verdict=verdict,
            reason=reason,
            operations=len(events),
            partitions=total,
            partitions_checked=checked,
            seconds=seconds,
            counterexample=None if outcome is None else outcome.counterexample,
        )

    violations = [
        (len(parts[k]), k, o)
        for k, o in enumerate(outcomes)
        if o is not None and o.status == VIOLATION
    ]
    if violations:
        size, k, outcome = min(violations, key=lambda v: (v[0], v[1]))
        return result(
            Verdict.VIOLATION,
            f"no atomic order explains partition {k + 1} of {total} ({counted(size, 'operation')})",
            outcome,
        )
    if checked < total:
        memory = [k for k, o in enumerate(outcomes) if o is not None and o.reason == "memory"]
        if memory:
            return result(
                Verdict.UNKNOWN,
                f"the search of partition {memory[0] + 1} of {total} "
                f"({counted(len(parts[memory[0]]), 'operation')}) outgrew its memory budget "
                f"of {_search.MAX_ENTRIES:,} states",
            )
        return result(
            Verdict.UNKNOWN,
            f"time budget of {timeout:g} s ran out after {checked} of {total} partitions",
        )
    return result(
        Verdict.OK,
        all_linearizable(total),
    )


def _picklable(model: Model) -> bool:
    """Can the model go to a worker process? (If not, the check runs serially.)"""
    try:
        pickle.dumps(model)
    except Exception:
        return False
    return True


def all_linearizable(partitions: int) -> str:
    """ "all 40 partitions linearizable", "the one partition linearizable"."""
    if partitions == 1:
        return "the one partition linearizable"
    return f"all {partitions:,} partitions linearizable"


def _run_serial(
    model: Model, parts: list[list[Event]], deadline: float | None, progress: Progress | None
) -> list[PartOutcome | None]:
    outcomes: list[PartOutcome | None] = [None] * len(parts)
    for k, part in enumerate(parts):
        if deadline is not None and time.monotonic() > deadline:
            break
        outcome = outcomes[k] = check_partition(model, part, deadline)
        if progress is not None:
            progress(k + 1, len(parts))
        if outcome.status != OK:
            break
    return outcomes


def _run_pool(
    model: Model,
    parts: list[list[Event]],
    deadline: float | None,
    workers: int,
    progress: Progress | None,
) -> list[PartOutcome | None]:
    outcomes: list[PartOutcome | None] = [None] * len(parts)
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=context)
    futures = {
        pool.submit(check_partition, model, part, deadline): k for k, part in enumerate(parts)
    }
    finished = False
    try:
        for done, future in enumerate(cf.as_completed(futures), 1):
            k = futures[future]
            outcome = outcomes[k] = future.result()
            if progress is not None:
                progress(done, len(parts))
            if outcome.status != OK:
                break
        else:
            finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # stop the searches still running: their answers no longer matter
            processes = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
    return outcomes
