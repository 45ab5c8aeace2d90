"""Drive a `stress.agent._worker.WorkerPool` round from trio without a thread hop.

The trio thread releases the round itself (`WorkerPool.start` never blocks) and sleeps on a
`trio.Event` that the last worker sets through the trio token: one cross-thread wake-up per
round instead of `trio.to_thread`'s two.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import trio

from stress.agent import Call, Record, WorkerPool


async def run_round(pool: WorkerPool, plans: Sequence[Sequence[Call]]) -> list[list[Record]]:
    """Run one round on `pool`; raises `stress.agent._worker.WorkerError` like `WorkerPool.results`.

    Waiting is shielded from cancellation: the threads cannot be stopped mid-call, and the
    pool must not start a new round before this one ends; a cancel takes effect right after.
    """
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()

    def finished() -> None:
        with contextlib.suppress(trio.RunFinishedError):  # the run is gone: nobody waits
            token.run_sync_soon(done.set)

    pool.start(plans, finished)
    with trio.CancelScope(shield=True):
        await done.wait()
    await trio.lowlevel.checkpoint_if_cancelled()
    return pool.results()
