"""`stress.agent._worker.WorkerPool`: rounds, gates, the non-blocking start, errors, reuse."""

from __future__ import annotations

import threading

import pytest

from stress.agent._worker import GATES, WorkerError, WorkerPool, overlap


def note(seen: list[int], value: int) -> int:
    seen.append(value)
    return value


@pytest.mark.parametrize("gate", GATES)
@pytest.mark.parametrize("inline", [False, True])
def test_each_thread_runs_its_plan_in_order_round_after_round(gate: str, inline: bool) -> None:
    pool = WorkerPool(3, gate=gate, inline=inline)
    seen: list[list[int]] = [[], [], []]
    try:
        for r in range(20):
            plans = [[(note, (seen[t], r * 100 + t * 10 + k)) for k in range(2)] for t in range(3)]
            records = pool.run_round(plans)
            assert [len(task) for task in records] == [2, 2, 2]
            for task in records:
                for result, call, ret in task:
                    assert result is not None and ret is not None and call <= ret
        assert seen == [
            [r * 100 + t * 10 + k for r in range(20) for k in range(2)] for t in range(3)
        ]
    finally:
        pool.close()
    pool.close()  # idempotent


def test_inline_runs_task_zero_in_the_calling_thread() -> None:
    pool = WorkerPool(2, inline=True)
    names: list[str] = []

    def name() -> int:
        names.append(threading.current_thread().name)
        return 0

    try:
        pool.run_round([[(name, ())], [(name, ())]])
    finally:
        pool.close()
    assert threading.current_thread().name in names
    assert any(n.startswith("mmrace-worker") for n in names)


def test_single_inline_thread_needs_no_worker() -> None:
    pool = WorkerPool(1, inline=True)
    assert pool.run_round([[(int, ("7",))]])[0][0][0] == 7
    pool.close()


def test_start_calls_on_done_once_per_round_and_frees_the_pool() -> None:
    pool = WorkerPool(4)
    done = threading.Semaphore(0)
    calls: list[int] = []
    try:
        for r in range(10):
            pool.start([[(note, (calls, r))] for _ in range(4)], done.release)
            assert done.acquire(timeout=10)
            assert [len(t) for t in pool.results()] == [1, 1, 1, 1]
        assert not done.acquire(timeout=0.05)  # no extra on_done
        assert sorted(calls) == sorted(r for r in range(10) for _ in range(4))
    finally:
        pool.close()


def test_a_raising_call_is_pending_and_reraised() -> None:
    pool = WorkerPool(2, inline=True)

    def boom() -> int:
        raise OSError("no")

    try:
        with pytest.raises(WorkerError, match=r"task 1: OSError: no"):
            pool.run_round([[(int, ("1",))], [(boom, ()), (int, ("2",))]])
        assert pool.last_records[1] == [(None, pool.last_records[1][0][1], None)]
        assert pool.run_round([[(int, ("3",))], [(int, ("4",))]])[1][0][0] == 4  # reusable
    finally:
        pool.close()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="threads"):
        WorkerPool(0)
    with pytest.raises(ValueError, match="gate"):
        WorkerPool(1, gate="nope")
    pool = WorkerPool(1)
    try:
        with pytest.raises(ValueError, match="2 task plans for 1"):
            pool.run_round([[], []])
    finally:
        pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.run_round([[]])


def test_overlap_counts_calls_in_flight() -> None:
    assert overlap([[(0, 0, 10)], [(0, 5, 15)], [(0, 10, 20)]]) == 2
    assert overlap([[(0, 0, 10)], [(None, 5, None)]]) == 2
    assert overlap([[(0, 0, 1)], [(0, 1, 2)]]) == 1
    assert overlap([]) == 0
