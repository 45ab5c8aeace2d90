"""The run loop: round after round of setup, race, cleanup; record, stop. It never judges.

`execute(config, target)` drives a target through rounds planned by the workload (setup, race,
cleanup, then the plan's footprint check, all but the race run serially), streams
every operation to DIR/history.jsonl (a round's buffers are merged when the round ends, so a
killed run loses at most the unflushed tail), writes the controlled scheduler's decisions to
DIR/schedule.jsonl, writes a round record per round (setup and race call counts, overlap,
problems) and counts how many rounds really raced (`contested`: a call that won overlapped a
competing call; `really_raced`: all racing calls shared an instant). Grading and checking are
later stages (`stress.driver` wires them); `on_round(stats, log)` hands each round's records to
whoever wants to look at them as the run goes.

Before `open`, a target with `declare_regions` is told every range the workload may touch; a
target with `set_deadline` is told when the time budget ends. Under the exhaustive scheduler the
target's `explorer` decides: each schedule is a recorded round of the run, planned from the
workload round the explorer is on (`plan_round`, written to DIR/schedule.jsonl as "plan"),
`rounds` counts workload rounds to explore, and a pruned schedule is not recorded at all.
Stopping: after `rounds` rounds, when `time_budget` runs out, when `stop.request()` is called
(Ctrl-C does that; a second Ctrl-C cancels the round in flight), or when the target is dead
(its `dead` attribute says how). Problems a target found outside any race (`late_problems`,
e.g. an agent that died during the last cleanup or at the end) are reported after the rounds.

Batches: when the target offers `run_rounds` (with `batch_limit` above 1) and there is no
explorer, rounds without setup run many per call (the kernel target's native engine: many
rounds per C call). The runner plans them ahead (`Workload.plan` is pure per round index) and
records each exactly as if it had run alone (same history lines and order, round records,
undo of moved mappings, stats, `on_round`). What batching changes: stop requests, the time
budget and `dead` are looked at between batches (each sized to about BATCH_SECONDS from the
last one's pace), so the rounds of a batch already run when a stop comes are recorded; a round
with setup, or one the target cannot batch, runs alone; the target checks interference per
batch (before and after it) instead of before each race.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import attrs
import trio

import mm
import workloads
from stress.errors import UsageError, counted, interruption
from stress.harness._scheduler import ScheduleDiverged
from stress.harness._target import RaceOutcome, RoundOps, Target, TargetOptions, contested
from stress.history import Header, HistoryWriter, Operation

PROBLEMS_KEPT = 50
PHASES = ("plan", "target", "record")


@attrs.frozen
class RunConfig:
    """What to run. Exactly one of `rounds` and `time_budget` (seconds) is usually set; with
    both, whichever ends first; with neither, until stopped."""

    workload: workloads.Workload
    workload_ref: str
    target: TargetOptions
    tasks: int
    rounds: int | None
    time_budget: float | None
    out: Path
    space: workloads.Space | None = None


class StopFlag:
    """Ask a running `execute` to stop after the current round (thread- and signal-safe)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def request(self, reason: str = "stopped") -> None:
        if self.reason is None:
            self.reason = reason

    @property
    def requested(self) -> bool:
        return self.reason is not None


@attrs.define(eq=False)
class RunStats:
    """What the rounds did; updated live (progress reads it) and final after `execute`."""

    tasks: int
    rounds_planned: int | None
    time_budget: float | None
    rounds: int = 0
    operations: int = 0
    race_operations: int = 0
    overlapped_rounds: int = 0  # contested rounds (`contested`)
    full_overlap_rounds: int = 0  # rounds whose racing calls all shared an instant
    racing_rounds: int = 0  # rounds in which two or more tasks had calls to race
    pruned_schedules: int = 0  # exhaustive: executions cut short at an explored state
    batched_rounds: int = 0  # rounds run in batches (`Target.run_rounds`)
    exploration: dict[str, Any] | None = None  # exhaustive: the explorer's account
    problem_count: int = 0
    problems: list[str] = attrs.Factory(list)
    interrupted: str | None = None
    started: float = attrs.Factory(time.monotonic)
    seconds: float = 0.0
    # seconds per phase: plan (workload), target (setup, race, cleanup), record
    phases: dict[str, float] = attrs.Factory(lambda: dict.fromkeys(PHASES, 0.0))
    # per round: (setup ops, race ops) as written to the history, and the race's problems
    shapes: array[int] = attrs.Factory(lambda: array("I"))
    round_problems: dict[int, tuple[str, ...]] = attrs.Factory(dict)
    space: workloads.Space | None = None

    @property
    def elapsed(self) -> float:
        return self.seconds or (time.monotonic() - self.started)

    @property
    def throughput(self) -> float:
        return self.operations / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def overlap_ratio(self) -> float:
        """Share of rounds where a real contest happened (`contested`)."""
        return self.overlapped_rounds / self.rounds if self.rounds else 0.0

    @property
    def full_overlap_ratio(self) -> float:
        """Share of rounds where every racing call was in flight at one instant."""
        return self.full_overlap_rounds / self.rounds if self.rounds else 0.0

    def note_problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(text)


def history_header(config: RunConfig, target: Target, space: workloads.Space) -> Header:
    """The history's first line: target, workload, seed, the params to judge by, the arena."""
    params = target.params
    extra: dict[str, Any] = {
        "tasks": config.tasks,
        "clock": target.clock,
        "workload_ref": config.workload_ref,
        **target.describe,
    }
    return Header.create(
        target.name,
        workload=config.workload.name,
        seed=config.target.seed,
        params=params.to_json(),
        privileged=params.privileged,
        arena={"base": space.base, "size": space.size},
        extra=extra,
    )


@attrs.frozen
class RoundLog:
    """One finished round as recorded: setup, race (with its problems) and cleanup records."""

    index: int
    setup: list[Operation]
    race: RaceOutcome
    cleanup: list[Operation]
    plan: int | None = None  # the workload round it was planned from, when not `index`


RoundHook = Callable[[RunStats, RoundLog], None]


def undo_moved(records: Sequence[Operation], page: int) -> list[mm.Op]:
    """munmaps for mappings a race left outside its plan's footprint: a hint placed elsewhere,
    or a fixed request answered with another address (a flag ignored). The runner issues them
    before the plan's cleanup, so rounds stay independent."""
    undo = []
    for r in records:
        op, result = r.op, r.result
        if result is None or result != mm.requested_address(op, page):
            made = mm.mapped_range(op, result, page)  # None unless a successful mmap
            if made is not None:
                undo.append(mm.Op.munmap(made[0], made[1] - made[0]))
    return undo


async def execute(
    config: RunConfig,
    target: Target,
    *,
    stop: StopFlag | None = None,
    on_round: RoundHook | None = None,
    handle_sigint: bool = False,
) -> RunStats:
    """Run the rounds; always closes the target and the history (trailer) on the way out."""
    stop = stop or StopFlag()
    stats = RunStats(config.tasks, config.rounds, config.time_budget)
    space = config.space or workloads.Space.from_params(target.params)
    stats.space = space
    try:  # (the target is closed on every way out: a plug-in's patches are process-wide)
        try:  # a workload that cannot be planned (e.g. too big for the arena) is bad input
            first = config.workload.plan(0, config.tasks, space, config.target.seed)
        except ValueError as exc:
            raise UsageError(f"workload {config.workload_ref}: {exc}") from None
        if not any(first.tasks):  # nothing would race: the run could verify nothing
            raise UsageError(
                f"workload {config.workload_ref}: its race selectors choose no call at "
                f"{counted(config.tasks, 'task')} (see race[].tasks)"
            )
        config.out.mkdir(parents=True, exist_ok=True)
        declare = getattr(target, "declare_regions", None)
        if declare is not None:  # e.g. page 0: the kernel and agent targets verify them free
            declare(_regions(config, space))
        await target.open(config.tasks, space)  # may fill in `describe` (arena, agent, ...)
    except BaseException:
        with trio.CancelScope(shield=True):
            await target.aclose()
        raise
    header = history_header(config, target, space)
    writer = HistoryWriter(config.out / "history.jsonl", header).open()
    schedule: IO[str] | None = None
    if target.clock == "steps":
        schedule = (config.out / "schedule.jsonl").open("w", encoding="utf-8")
    stats.started = time.monotonic()
    set_deadline = getattr(target, "set_deadline", None)
    if set_deadline is not None and config.time_budget is not None:
        set_deadline(stats.started + config.time_budget)
    explorer = getattr(target, "explorer", None)
    if explorer is not None:
        explorer.configure(config.rounds)
    fatal: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            if handle_sigint and threading.current_thread() is threading.main_thread():
                # started (its handler installed) before the first round: a round that never
                # checkpoints (a stuck plug-in call) must still see Ctrl-C
                await nursery.start(_watch_sigint, stop, nursery.cancel_scope)
            try:
                await _rounds(config, target, space, writer, schedule, stats, stop, on_round)
            except (UsageError, ScheduleDiverged) as exc:
                fatal = exc  # re-raised below, outside the nursery (no exception group)
            except Exception as exc:  # a target failing mid-run: keep what was recorded
                stats.note_problem(
                    f"round {stats.rounds}: the target failed: {type(exc).__name__}: {exc}"
                )
                stop.request("the target failed")
            finally:
                nursery.cancel_scope.cancel()
        if stop.requested:
            stats.interrupted = stop.reason
    finally:
        stats.seconds = time.monotonic() - stats.started
        if explorer is not None:
            if stats.interrupted:
                explorer.stop(stats.interrupted)
            stats.exploration = explorer.to_json()
        with trio.CancelScope(shield=True):
            await target.aclose()
        late = [str(p) for p in getattr(target, "late_problems", None) or ()]
        for problem in late:  # e.g. an agent that died in the last cleanup or at the end
            stats.note_problem(problem)
        trailer: dict[str, Any] = {"problems": late} if late else {}
        writer.close(rounds=stats.rounds, interrupted=stats.interrupted, **trailer)
        if schedule is not None:
            schedule.close()
    if fatal is not None:
        raise fatal
    return stats


def _regions(config: RunConfig, space: workloads.Space) -> list[tuple[int, int]]:
    try:
        return list(config.workload.regions(config.tasks, space))
    except ValueError as exc:
        raise UsageError(f"workload {config.workload_ref}: {exc}") from None


async def _watch_sigint(
    stop: StopFlag,
    scope: trio.CancelScope,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """First Ctrl-C (or SIGTERM): stop after this round. Second: cancel the round in flight."""
    with trio.open_signal_receiver(signal.SIGINT) as signals:  # (the CLI makes SIGTERM one)
        task_status.started()
        async for _ in signals:
            if stop.requested:
                scope.cancel()
            stop.request(f"interrupted ({interruption()})")


BATCH_SECONDS = 0.0015  # a batch of rounds (`Target.run_rounds`) should last about this long
BATCH_FIRST = 4  # rounds in the first batch (later ones are sized from the last one's time)


def _batch_size(limit: int, ran: int, seconds: float) -> int:
    """Rounds for the next batch: as many as fit in BATCH_SECONDS at the last batch's pace."""
    if ran <= 0 or seconds <= 0:
        return min(limit, BATCH_FIRST)
    return max(1, min(limit, int(BATCH_SECONDS * ran / seconds)))


async def _rounds(
    config: RunConfig,
    target: Target,
    space: workloads.Space,
    writer: HistoryWriter,
    schedule: IO[str] | None,
    stats: RunStats,
    stop: StopFlag,
    on_round: RoundHook | None,
) -> None:
    workload, tasks, seed = config.workload, config.tasks, config.target.seed
    deadline = None if config.time_budget is None else stats.started + config.time_budget
    clock = time.perf_counter
    phases = stats.phases
    explorer = getattr(target, "explorer", None)
    run_rounds = getattr(target, "run_rounds", None)
    limit = int(getattr(target, "batch_limit", 0) or 0)
    batching = explorer is None and run_rounds is not None and limit > 1
    ahead: deque[workloads.RoundPlan] = deque()  # planned for a batch, not run: rounds r, r + 1...
    size = _batch_size(limit, 0, 0.0)
    record = _Recorder(target, writer, schedule, stats, on_round, explorer)
    r = executions = 0
    while True:
        if explorer is not None:
            if explorer.finished:
                break
        elif config.rounds is not None and r >= config.rounds:
            break
        if stop.requested:
            break
        if deadline is not None and time.monotonic() >= deadline:
            if explorer is not None:
                explorer.stop("the time budget ran out")
            break
        if getattr(target, "dead", None):  # nothing more can be recorded: say so, stop
            stop.request("the target died")
            break
        if batching:
            assert run_rounds is not None
            t0 = clock()
            want = size if config.rounds is None else min(size, config.rounds - r)
            while len(ahead) < want:
                ahead.append(workload.plan(r + len(ahead), tasks, space, seed))
            batch: list[RoundOps] = []
            for plan in ahead:
                if plan.setup or len(batch) == want:  # setup: the content oracle needs Python
                    break
                batch.append((plan.tasks, (*plan.cleanup, *plan.check)))
            t1 = clock()
            done = await run_rounds(r, batch) if batch else []
            t2 = clock()
            if done:
                size = _batch_size(limit, len(done), t2 - t1)
                phases["plan"] += t1 - t0
                phases["target"] += t2 - t1
                stats.batched_rounds += len(done)
                for got in done:
                    await record(r, r, ahead.popleft(), [], got.race, got.tail)
                    r += 1
                await trio.lowlevel.checkpoint()
                continue
        t0 = clock()
        planned = r
        if explorer is not None:
            explorer.begin()
            planned = explorer.plan_round
        plan = ahead.popleft() if ahead else workload.plan(planned, tasks, space, seed)
        t1 = clock()
        setup = await target.run_serial(r, plan.setup) if plan.setup else []
        race = await target.run_race(r, plan.tasks)
        t2 = clock()
        phases["plan"] += t1 - t0
        phases["target"] += t2 - t1
        executions += 1
        if executions % 64 == 0:
            await trio.lowlevel.checkpoint()
        if explorer is not None:
            explorer.end(race.pruned)
            if race.pruned:  # an explored state: nothing of this execution is recorded
                stats.pruned_schedules += 1
                continue
        await record(r, planned, plan, setup, race, None)
        r += 1


class _Recorder:
    """Finish a round whose race ran: undo what it left outside its footprint, cleanup and
    footprint check (unless a batch ran them: `tail`), then the history lines, the round
    record, the stats and `on_round`, the same for a batched round as for one run alone."""

    def __init__(
        self,
        target: Target,
        writer: HistoryWriter,
        schedule: IO[str] | None,
        stats: RunStats,
        on_round: RoundHook | None,
        explorer: Any,
    ) -> None:
        self.target = target
        self.writer = writer
        self.schedule = schedule
        self.stats = stats
        self.on_round = on_round
        self.explorer = explorer
        self.page = target.params.page_size

    async def __call__(
        self,
        r: int,
        planned: int,
        plan: workloads.RoundPlan,
        setup: list[Operation],
        race: RaceOutcome,
        tail: list[Operation] | None,
    ) -> None:
        target, stats, page, explorer = self.target, self.stats, self.page, self.explorer
        phases = stats.phases
        clock = time.perf_counter
        t2 = clock()
        if tail is None:
            undo = undo_moved(race.records, page)  # mappings placed outside the footprint
            cleanup_ops = (*undo, *plan.cleanup, *plan.check)
        else:
            cleanup_ops = (*plan.cleanup, *plan.check)
        t3 = clock()
        if tail is None:
            cleanup = await target.run_serial(r, cleanup_ops) if cleanup_ops else []
        else:
            cleanup = tail
        if plan.check and len(cleanup) == len(cleanup_ops):
            # a footprint-check probe answered with another address: undo that mapping too
            stray = undo_moved(cleanup[-len(plan.check) :], page)
            if stray:
                cleanup += await target.run_serial(r, stray)
        t4 = clock()
        write = self.writer.write
        for records in (setup, race.records, cleanup):
            for rec in records:
                if rec.round != r:  # a target bug: its records would land in another round
                    raise RuntimeError(f"{target.name} recorded round {rec.round} in round {r}")
                write(rec)
        schedule = self.schedule
        if schedule is not None:
            line: dict[str, Any] = {"round": r, "choices": getattr(target, "last_choices", [])}
            if explorer is not None:
                line["plan"] = planned
            schedule.write(json.dumps(line, separators=(",", ":")))
            schedule.write("\n")
        contest = contested(race.records, page)
        info: dict[str, Any] = {"setup": len(setup), "race": len(race.records)}
        if explorer is not None:
            info["plan"] = planned
        if not contest:  # the keys below default to true: written only when false
            info["overlapped"] = False
        if not race.overlapped:
            info["all_overlapped"] = False
        if race.content is not None:
            info["content"] = race.content
        if race.problems:
            info["problems"] = race.problems
            for problem in race.problems:
                stats.note_problem(problem)
        self.writer.write_round(r, flush=bool(race.problems), **info)
        stats.rounds = r + 1
        stats.operations += len(setup) + len(race.records) + len(cleanup)
        stats.race_operations += len(race.records)
        stats.overlapped_rounds += contest
        stats.full_overlap_rounds += race.overlapped
        stats.racing_rounds += sum(1 for ops in plan.tasks if ops) >= 2
        stats.shapes.append(len(setup))
        stats.shapes.append(len(race.records))
        if race.problems:
            stats.round_problems[r] = tuple(race.problems)
        t5 = clock()
        phases["target"] += t4 - t3
        phases["record"] += t5 - t4 + (t3 - t2)
        if self.on_round is not None:
            self.on_round(
                stats, RoundLog(r, setup, race, cleanup, planned if explorer is not None else None)
            )
