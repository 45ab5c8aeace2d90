"""The kernel target's batches (many rounds per C call, `KernelTarget.run_rounds`) as the runner
drives them: the same history as a round at a time, the early stops, a hang, the budget, a stop
request and interference that appears while a batch runs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import mm
import workloads
from stress.errors import UsageError
from stress.history import Operation, load_history

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux"),
]

if sys.platform.startswith("linux"):
    from mm import kernel as k
    from stress.harness import (
        RoundLog,
        RunConfig,
        RunStats,
        StopFlag,
        TargetOptions,
        _native,
        execute,
    )
    from stress.harness._kernel import KernelTarget
    from stress.harness._runner import BATCH_FIRST
    from workloads import Space

P = 4096
B = 0x100000000000
SIZE = 1 << 24


@attrs.frozen
class Ran:
    stats: RunStats
    ops: list[Operation]
    target: KernelTarget


async def run(
    out: Path,
    tasks: int,
    rounds: int | None,
    *,
    workload: str = "same-page",
    batch: int | None = None,
    budget: float | None = None,
    stop: StopFlag | None = None,
    on_round: Callable[[RunStats, RoundLog], None] | None = None,
    timeout: float | None = None,
) -> Ran:
    options = TargetOptions(spec="kernel", seed=3, engine="native", batch=batch, timeout=timeout)
    target = KernelTarget(options)
    config = RunConfig(
        workloads.get(workload), workload, options, tasks, rounds, budget, out, Space(B, SIZE, P)
    )
    stats = await execute(config, target, stop=stop, on_round=on_round)
    assert target.engine == "native"
    _, ops = load_history(out / "history.jsonl")
    return Ran(stats, ops, target)


def by_round(ops: list[Operation]) -> dict[int, list[Operation]]:
    rounds: dict[int, list[Operation]] = {}
    for rec in ops:
        rounds.setdefault(rec.round, []).append(rec)
    return rounds


def serial_part(records: list[Operation], races: int) -> list[Operation]:
    """The round's records after its race (the race's `races` records come first)."""
    return records[races:]


@pytest.mark.parametrize(("workload", "tasks"), [("same-page", 4), ("top", 4), ("adjacent", 3)])
async def test_batched_and_unbatched_runs_record_the_same_structure(
    tmp_path: Path, workload: str, tasks: int
) -> None:
    batched = await run(tmp_path / "b", tasks, 120, workload=workload)
    alone = await run(tmp_path / "a", tasks, 120, workload=workload, batch=1)
    assert batched.stats.batched_rounds == 120 and alone.stats.batched_rounds == 0
    assert batched.stats.rounds == alone.stats.rounds == 120
    assert batched.stats.problems == alone.stats.problems == []
    assert list(batched.stats.shapes) == list(alone.stats.shapes)
    shape = [(r.round, r.task, r.op) for r in batched.ops]
    assert shape == [(r.round, r.task, r.op) for r in alone.ops]
    races = batched.stats.shapes[1::2]
    for index, records in by_round(batched.ops).items():
        race, tail = records[: races[index]], serial_part(records, races[index])
        assert tail and all(rec.task == 0 for rec in tail)
        # the tail ran after every race call returned, its calls one after another
        assert min(t.call for t in tail) >= max(r.ret or 1 << 62 for r in race)
        assert [t.call for t in tail] == sorted(t.call for t in tail)
        assert [t.result for t in tail][-2:] == [tail[-2].op.addr, 0]  # the footprint check


async def test_a_moved_mapping_ends_the_batch_and_is_undone_before_the_next_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_native.DEBUG_ENV, "move:1")  # task 1's mmap lands a page higher
    ran = await run(tmp_path / "run", 2, 30)
    assert ran.stats.batched_rounds == 30
    rounds = by_round(ran.ops)
    for index, records in rounds.items():
        [moved] = [r for r in records if r.task == 1]
        assert moved.result == moved.op.addr + P  # a NOREPLACE request answered elsewhere
        undo, cleanup, probe, unprobe = serial_part(records, 2)
        assert (undo.op.kind, undo.op.addr, undo.op.length, undo.result) == (
            "munmap",
            moved.op.addr + P,
            P,
            0,
        )
        # the batch stopped before the plan's tail: the runner's undo ran first
        assert undo.ret is not None and undo.ret <= cleanup.call < probe.call < unprobe.call
        assert probe.result == probe.op.addr  # nothing of the round was left
        if index + 1 in rounds:
            assert all(r.call >= undo.ret for r in rounds[index + 1])


async def test_a_hung_call_inside_a_batch_ends_the_run_with_the_call_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_native.DEBUG_ENV, "hang:1")  # when a worker thread runs task 1
    ran = await run(tmp_path / "run", 2, 50, timeout=0.5)
    stats = ran.stats
    hung = stats.rounds - 1
    assert 1 <= hung < BATCH_FIRST  # the plans rotate: a round of the first batch hangs
    assert stats.batched_rounds == stats.rounds and stats.interrupted == "the target died"
    assert list(stats.round_problems) == [hung]
    assert "did not return within 0.5 s" in stats.round_problems[hung][0]
    rounds = by_round(ran.ops)
    last = rounds[hung]
    assert [r.task for r in last] == [0, 1]  # no tail after the hung race
    pending = last[1]
    assert pending.result is None and pending.ret is None
    for index in range(hung):  # the rounds before it: recorded as usual, tail included
        assert len(rounds[index]) == 2 + 3 and all(r.ret is not None for r in rounds[index])


async def test_the_time_budget_ends_a_batched_run(tmp_path: Path) -> None:
    ran = await run(tmp_path / "run", 2, None, budget=0.3)
    assert ran.stats.rounds > 0 and ran.stats.batched_rounds == ran.stats.rounds
    assert ran.stats.interrupted is None and ran.stats.problems == []
    assert len(by_round(ran.ops)) == ran.stats.rounds


async def test_a_stop_request_ends_a_batched_run_after_its_batch(tmp_path: Path) -> None:
    stop = StopFlag()

    def stop_at_ten(stats: RunStats, log: RoundLog) -> None:
        if log.index == 10:
            stop.request()

    ran = await run(tmp_path / "run", 2, None, stop=stop, on_round=stop_at_ten)
    # the rounds of the batch in flight are recorded, then the run stops
    assert 10 < ran.stats.rounds <= 11 + ran.target._batch
    assert ran.stats.interrupted == "stopped"
    assert len(by_round(ran.ops)) == ran.stats.rounds


async def test_interference_that_appears_during_the_last_batch_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    foreign = B + SIZE - P
    run_batch = _native.NativeRacer.run_batch

    def intruding(self: Any, rounds: Any, timeout: float) -> Any:
        got = run_batch(self, rounds, timeout)
        k.raw_mmap(foreign, P, mm.PROT_NONE, mm.NR, -1, 0)  # as if mapped while the C ran
        return got

    monkeypatch.setattr(_native.NativeRacer, "run_batch", intruding)
    try:
        ran = await run(tmp_path / "run", 2, BATCH_FIRST)  # one batch: the run's last
    finally:
        k.raw_munmap(foreign, P)
    stats = ran.stats
    assert stats.rounds == stats.batched_rounds == BATCH_FIRST
    assert list(stats.round_problems) == [BATCH_FIRST - 1]  # the batch's last round
    [problem] = stats.round_problems[BATCH_FIRST - 1]
    assert problem.startswith("interference") and f"{foreign:#x}" in problem


async def test_interference_between_batches_goes_to_the_next_batch(tmp_path: Path) -> None:
    foreign = B + SIZE - P
    seen: list[int] = []

    def intrude_once(stats: RunStats, log: RoundLog) -> None:
        if log.index == 0:
            k.raw_mmap(foreign, P, mm.PROT_NONE, mm.NR, -1, 0)
        if log.race.problems:
            seen.append(log.index)

    try:
        ran = await run(tmp_path / "run", 2, 3 * BATCH_FIRST, on_round=intrude_once)
    finally:
        k.raw_munmap(foreign, P)
    # mapped after the first batch ran: the next batch's check finds it, in its first round
    assert seen == list(ran.stats.round_problems) == [BATCH_FIRST]


def test_the_batch_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMRACE_BATCH", "1")
    assert KernelTarget(TargetOptions(spec="kernel"))._batch == 1
    assert KernelTarget(TargetOptions(spec="kernel", batch=7))._batch == 7  # the option wins
    monkeypatch.setenv("MMRACE_BATCH", "many")
    with pytest.raises(UsageError, match=r"^\$MMRACE_BATCH: 'many' is not a whole number$"):
        KernelTarget(TargetOptions(spec="kernel"))
    monkeypatch.delenv("MMRACE_BATCH")
    with pytest.raises(UsageError, match="at least 1"):
        KernelTarget(TargetOptions(spec="kernel", batch=0))


async def test_the_python_engine_offers_no_batches() -> None:
    target = KernelTarget(TargetOptions(spec="kernel", engine="python"))
    await target.open(2, Space(B, SIZE, P))
    try:
        assert target.batch_limit == 0
        plans = [[mm.Op.mmap(B, P, mm.PROT_READ, mm.NR)]] * 2
        assert await target.run_rounds(0, [(plans, [mm.Op.munmap(B, P)])]) == []
    finally:
        await target.aclose()
