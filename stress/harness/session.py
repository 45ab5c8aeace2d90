"""One whole run, synchronously: rounds (under trio), check, judge, summary files.

Shared by `mmrace run` and `mmrace replay`. `run.json` records how the run was configured so
that `mmrace replay DIR` can rebuild it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

import workloads
from stress.errors import UsageError
from stress.harness._target import Target, TargetOptions
from stress.harness.grade import grade_history
from stress.harness.runner import RunConfig, RunStats, StopFlag, execute
from stress.harness.summary import RUN_FILE, build_summary, write_summary
from stress.harness.verdict import UNKNOWN, CheckSummary, check_operations, judge
from stress.history import load_history

WORKLOAD_COPY = "workload.toml"


def load_workload(ref: str) -> workloads.Workload:
    """A catalog name or a path to a .toml file; a UsageError names the problem."""
    try:
        if ref.endswith(".toml") or Path(ref).is_file():
            if not Path(ref).is_file():
                raise UsageError(f"workload {ref}: no such file")
            return workloads.load_toml(ref)
        return workloads.get(ref)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_json(config: RunConfig) -> dict[str, Any]:
    """The reproducible configuration of a run (what replay needs)."""
    opts = config.target
    return {
        "mmrace_run": 1,
        "workload": config.workload.name,
        "workload_ref": config.workload_ref,
        "target": opts.spec,
        "scheduler": opts.scheduler,
        "depth": opts.depth,
        "seed": opts.seed,
        "tasks": config.tasks,
        "rounds": config.rounds,
        "time_budget": config.time_budget,
        "variant": opts.variant,
        "wrapper": list(opts.wrapper),
        "noise": opts.noise,
        "privileged": opts.params.privileged if opts.params else None,
        "agent_timeout": opts.timeout,
        "params": opts.params.to_json() if opts.params else None,
        "space": attrs.asdict(config.space) if config.space else None,
    }


def save_run_json(config: RunConfig) -> None:
    config.out.mkdir(parents=True, exist_ok=True)
    data = run_json(config)
    ref = Path(config.workload_ref)
    if ref.suffix == ".toml" and ref.is_file():
        shutil.copyfile(ref, config.out / WORKLOAD_COPY)
        data["workload_file"] = WORKLOAD_COPY
    (config.out / RUN_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def perform(
    config: RunConfig,
    target: Target,
    *,
    check_timeout: float,
    progress: Callable[[RunStats], None] | None = None,
    stop: StopFlag | None = None,
    handle_sigint: bool = True,
    on_round: Callable[[RunStats], None] | None = None,
) -> dict[str, Any]:
    """Run, check and judge; writes DIR/summary.json and returns the summary dict."""

    def each_round(stats: RunStats) -> None:
        if progress is not None:
            progress(stats)
        if on_round is not None:
            on_round(stats)

    try:
        stats = trio.run(
            lambda: execute(
                config, target, stop=stop, on_round=each_round, handle_sigint=handle_sigint
            )
        )
    finally:
        close = getattr(progress, "close", None)
        if close is not None:
            close()
    header, ops = load_history(config.out / "history.jsonl")
    started = time.perf_counter()
    stats.grader = grade_history(
        config.workload, config.tasks, config.target.seed, target.params, stats, ops
    )
    stats.phases["grade"] = time.perf_counter() - started
    started = time.perf_counter()
    try:
        check = check_operations(header, ops, check_timeout)
    except KeyboardInterrupt:
        check = CheckSummary(UNKNOWN, "check interrupted (Ctrl-C)", 0.0, 0, 0)
    stats.phases["check"] = time.perf_counter() - started
    del ops
    judgement = judge(stats, check)
    summary = build_summary(
        config,
        stats,
        judgement,
        target_name=target.name,
        describe=target.describe,
        clock=target.clock,
        replayable=target.clock == "steps",
    )
    write_summary(config.out, summary)
    return summary


def options_from_run_json(data: dict[str, Any], **overrides: Any) -> TargetOptions:
    import mm

    params = mm.Params.from_json(data["params"]) if data.get("params") else None
    fields: dict[str, Any] = {
        "spec": data["target"],
        "seed": data["seed"],
        "scheduler": data["scheduler"],
        "depth": data["depth"],
        "wrapper": tuple(data.get("wrapper") or ()),
        "variant": data.get("variant"),
        "params": params,
        "noise": data.get("noise", True),
        "timeout": data.get("agent_timeout"),
    }
    fields.update(overrides)
    return TargetOptions(**fields)
