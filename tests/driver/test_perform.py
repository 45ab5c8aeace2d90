"""Whole runs through the session API: history files, verdicts, summary, stopping."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

import mm
import workloads
from stress.driver import perform, save_run_json
from stress.harness import (
    RaceOutcome,
    RoundLog,
    RunConfig,
    RunStats,
    StopFlag,
    TargetOptions,
    execute,
)
from stress.harness._model import ModelTarget
from stress.harness._threads import ThreadsTarget
from stress.history import load_history, read_history
from tests.harness.test_scheduler import RacyTrioCore


def config(
    out: Path, *, seed: int = 1, rounds: int | None = 20, tasks: int = 6, **kw: Any
) -> RunConfig:
    options = TargetOptions(seed=seed, **kw)
    same_page = workloads.get("same-page")
    return RunConfig(same_page, "same-page", options, tasks, rounds, None, out)


def test_correct_model_run_is_ok_and_summary_says_so(tmp_path: Path) -> None:
    cfg = config(tmp_path / "run")
    summary = perform(cfg, ModelTarget(cfg.target), check_timeout=30, handle_sigint=False)
    assert summary["verdict"] == "OK" and summary["exit_code"] == 0
    assert summary["check"]["verdict"] == "OK"
    assert summary["rounds"] == 20
    # 6 probes race, then one munmap cleans up and the footprint check probes and unmaps.
    assert summary["race_operations"] == 120 and summary["operations"] == 180
    assert summary["overlap"]["ratio"] == 1.0
    assert summary["grading"]["strict"]["verdict"] == "OK"
    assert summary["clock"] == "steps" and summary["seed"] == 1
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk == summary
    header, ops = load_history(tmp_path / "run" / "history.jsonl")
    assert header.target == "model" and header.seed == 1 and len(ops) == 180
    assert {op.round for op in ops} == set(range(20))
    schedule = (tmp_path / "run" / "schedule.jsonl").read_text().splitlines()
    assert len(schedule) == 20


def test_racy_core_is_a_violation_with_counterexample_and_replay(tmp_path: Path) -> None:
    cfg = config(tmp_path / "bad", rounds=10, tasks=4)
    save_run_json(cfg)
    target = ModelTarget(cfg.target, core=RacyTrioCore)
    summary = perform(cfg, target, check_timeout=30, handle_sigint=False)
    assert summary["verdict"] == "VIOLATION" and summary["exit_code"] == 1
    assert summary["check"]["verdict"] == "VIOLATION"
    assert summary["check"]["counterexample"]
    assert summary["grading"]["strict"]["verdict"] == "VIOLATION"
    assert summary["grading"]["strict"]["worst"] == "FORBIDDEN"
    assert summary["replay"] == f"mmrace replay {tmp_path / 'bad'}"


def test_threads_target_with_noise_judges_ok(tmp_path: Path) -> None:
    cfg = config(tmp_path / "thr", spec="model-threads", rounds=30, tasks=8)
    summary = perform(cfg, ThreadsTarget(cfg.target), check_timeout=30, handle_sigint=False)
    assert summary["verdict"] == "OK", summary["reasons"]
    assert summary["clock"] == "ns" and summary["replay"] is None
    _, reader = read_history(tmp_path / "thr" / "history.jsonl")
    ops = list(reader)
    assert len(ops) == 30 * 11 and all(op.call <= op.ret for op in ops if op.ret is not None)
    # rounds that did not really race carry a round record saying so
    not_raced = [r for r, d in reader.rounds.items() if d.get("overlapped") is False]
    assert len(not_raced) == summary["rounds"] - summary["overlap"]["rounds"]


def test_stop_request_keeps_and_checks_the_history(tmp_path: Path) -> None:
    cfg = config(tmp_path / "stop", rounds=None)  # no end but the stop request
    stop = StopFlag()

    def on_round(stats: RunStats, log: RoundLog) -> None:
        if stats.rounds == 7:
            stop.request("interrupted (test)")

    summary = perform(
        cfg,
        ModelTarget(cfg.target),
        check_timeout=30,
        stop=stop,
        on_round=on_round,
        handle_sigint=False,
    )
    assert summary["rounds"] == 7
    assert summary["interrupted"] == "interrupted (test)"
    assert summary["check"]["verdict"] == "OK"  # what was recorded is still checked...
    assert summary["verdict"] == "UNKNOWN" and summary["exit_code"] == 3  # ...but incomplete
    _, ops = load_history(tmp_path / "stop" / "history.jsonl")
    assert len(ops) == 7 * 9


def test_cancelled_round_is_dropped_and_the_rest_kept(tmp_path: Path) -> None:
    cfg = config(tmp_path / "cancel", rounds=None)

    async def main() -> None:
        with trio.move_on_after(0.3):
            await execute(cfg, ModelTarget(cfg.target))

    trio.run(main)
    _, ops = load_history(tmp_path / "cancel" / "history.jsonl")
    rounds = {op.round for op in ops}
    assert rounds == set(range(len(rounds))) and len(ops) == 9 * len(rounds)


class FailingTarget(ModelTarget):
    """Breaks down at round 3, as a crashed agent would."""

    async def run_race(self, round_index: int, plans: Sequence[Sequence[mm.Op]]) -> RaceOutcome:
        if round_index == 3:
            raise RuntimeError("agent vanished")
        return await super().run_race(round_index, plans)


def test_a_failing_target_is_unknown_not_ok(tmp_path: Path) -> None:
    cfg = config(tmp_path / "fail", rounds=10)
    summary = perform(cfg, FailingTarget(cfg.target), check_timeout=30, handle_sigint=False)
    assert summary["rounds"] == 3 and summary["problem_count"] == 1
    assert "agent vanished" in summary["problems"][0]
    assert summary["verdict"] == "UNKNOWN" and summary["exit_code"] == 3
    assert summary["check"]["verdict"] == "OK"  # the three recorded rounds were fine
