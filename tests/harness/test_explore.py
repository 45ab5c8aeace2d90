"""`--scheduler exhaustive`: every schedule of a round up to K preemptions, depth first.

The correct core's search is complete with no violation, every built-in bug variant is found by
a 2- or 3-task round of a workload that exposes it (and the replay of the run up to the first
failing schedule fails the same way, identically), state caching finds what the plain search
finds, an incomplete search is never OK, and plug-ins are explored too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mm.variants
from stress.driver import perform, replay, replay_config, save_run_json
from stress.errors import UsageError
from stress.harness import RunConfig, TargetOptions
from stress.harness._explore import DFSStrategy, Explorer
from stress.harness._model import ModelTarget
from stress.selftest import _workloads as extra
from stress.selftest.mutants import EXPOSES, model_params
from tests.conftest import RunResult


def explore(
    tmp: Path,
    variant: str | None,
    workload: str,
    tasks: int,
    *,
    cache: bool = True,
    cap: int = 20_000,
    preemptions: int = 2,
) -> dict[str, Any]:
    """An exhaustive run of the model target (the machine mutants' cells use), its summary."""
    wl, ref = extra.load(workload, tmp / "workloads")
    options = TargetOptions(
        seed=0,
        scheduler="exhaustive",
        variant=variant,
        params=model_params(workload),
        preemptions=preemptions,
        max_schedules=cap,
    )
    target = ModelTarget(options)
    if not cache:
        assert isinstance(target.explorer, Explorer)
        target.explorer.key = None
        target.explorer._seen = None
    out = tmp / f"{variant or 'correct'}-{workload}-{tasks}-{'cache' if cache else 'plain'}"
    config = RunConfig(wl, ref, options, tasks, 1, None, out)
    save_run_json(config)
    return perform(config, target, check_timeout=20, handle_sigint=False)


@pytest.mark.parametrize("tasks", [2, 3])
def test_correct_core_search_is_complete_and_says_what_ok_means(tmp_path: Path, tasks: int) -> None:
    summary = explore(tmp_path, None, "same-page", tasks)
    assert summary["verdict"] == "OK" and summary["exit_code"] == 0
    e = summary["exploration"]
    assert e["complete"] and e["schedules"] == summary["rounds"] + e["pruned"]
    assert summary["reasons"][0].startswith(
        "no violation in any schedule up to 2 preemptions: the search was complete"
    )
    from stress.report import format_summary, load_run

    assert "complete for at most 2 preemption(s)" in format_summary(summary)
    facts = dict(load_run(Path(summary["run_dir"])).facts)
    assert facts["exploration"].endswith("complete for at most 2 preemption(s)")


def test_three_tasks_need_the_state_cache(tmp_path: Path) -> None:
    cached = explore(tmp_path, None, "same-page", 3)
    plain = explore(tmp_path, None, "same-page", 3, cache=False)
    assert cached["exploration"]["complete"] and plain["exploration"]["complete"]
    assert cached["exploration"]["pruned"] > 0 and plain["exploration"]["pruned"] == 0
    assert cached["rounds"] < plain["rounds"]  # fewer schedules recorded, the same answer
    assert cached["verdict"] == plain["verdict"] == "OK"


# Variants no 2- or 3-task round of their workloads can show, and why (random and PCT runs with
# more tasks find them: `mmrace mutants`). For these the search must complete and find nothing.
NEEDS_MORE_TASKS = {
    # the probe of page 3 publishes it read-write, then narrows it under a second lock: only a
    # second munmap of page 3 between the two steps shows it, and mixed gives every fourth task
    # an munmap, so it takes six tasks (two munmaps around the probe).
    "two-phase-protect": "mixed",
}


@pytest.mark.parametrize("variant", sorted(NEEDS_MORE_TASKS))
def test_a_variant_small_rounds_cannot_show_is_searched_completely(
    tmp_path: Path, variant: str
) -> None:
    for tasks in (2, 3):
        summary = explore(tmp_path, variant, NEEDS_MORE_TASKS[variant], tasks)
        assert summary["verdict"] == "OK" and summary["exploration"]["complete"]


@pytest.mark.parametrize("variant", [v for v in mm.variants.names() if v not in NEEDS_MORE_TASKS])
def test_every_variant_is_found_by_a_small_round_and_replays(tmp_path: Path, variant: str) -> None:
    found = None
    tried = []
    for workload in EXPOSES[variant]:
        for tasks in (2, 3):
            try:
                summary = explore(tmp_path, variant, workload, tasks)
            except UsageError:  # a workload that needs more tasks
                continue
            tried.append((workload, tasks, summary["verdict"]))
            if summary["verdict"] == "VIOLATION":
                found = summary
                break
        if found:
            break
    assert found is not None, tried
    first = found["exploration"]["first_failure"]
    assert first["round"] == found["rounds"] - 1  # the search stopped at the first failure
    src = Path(found["run_dir"])
    config, schedule, plans = replay_config(src, None)
    assert set(plans.values()) == {0} and len(schedule) == found["rounds"]
    again = replay(config, schedule, src, check_timeout=20, plans=plans)
    assert again.identical
    assert again.summary["verdict"] == "VIOLATION"
    assert again.summary["check"]["reason"] == found["check"]["reason"]


@pytest.mark.parametrize(
    ("variant", "workload"),
    [
        ("check-then-act", "same-page"),
        ("rollback-window", "same-page"),
        ("munmap-nonatomic", "split-munmap"),
    ],
)
def test_state_caching_finds_what_the_plain_search_finds(
    tmp_path: Path, variant: str, workload: str
) -> None:
    cached = explore(tmp_path, variant, workload, 3)
    plain = explore(tmp_path, variant, workload, 3, cache=False)
    assert cached["verdict"] == plain["verdict"] == "VIOLATION"


def test_an_incomplete_search_is_unknown_and_says_so(tmp_path: Path) -> None:
    summary = explore(tmp_path, None, "same-page", 3, cap=5)
    assert summary["verdict"] == "UNKNOWN" and summary["exit_code"] == 3
    assert not summary["exploration"]["complete"]
    assert "the exhaustive search was not complete" in summary["reasons"][0]
    assert "raise --max-schedules" in summary["reasons"][0]


def test_preemption_bound_zero_runs_each_order_once(tmp_path: Path) -> None:
    # K = 0: no preemption at all, only the choice of who runs first after the start gate and
    # who gets the lock: check-then-act's window is never interleaved, so it is not found
    summary = explore(tmp_path, "check-then-act", "same-page", 2, preemptions=0)
    assert summary["verdict"] == "OK" and summary["exploration"]["complete"]
    assert "up to 0 preemptions" in summary["reasons"][0]


def test_dfs_follows_its_prefix_then_never_preempts() -> None:
    dfs = DFSStrategy()
    dfs.start([1], 2, None, None)
    assert dfs.choose([0, 1], None) == 1  # the prefix
    assert dfs.choose([0, 1], 1) == 1  # then the default: keep running the last task
    assert dfs.choose([0], 1) == 0  # it blocked or finished: the next one, no preemption
    assert dfs.used == 0
    with pytest.raises(RuntimeError, match="not runnable"):
        dfs.start([2], 2, None, None)
        dfs.choose([0, 1], None)


@pytest.mark.parametrize(
    ("factory", "tasks", "verdict"),
    [("nolock", 2, "VIOLATION"), ("nolock_async", 3, "VIOLATION"), ("locked", 2, "OK"),
     ("locked_async", 3, "OK")],
)  # fmt: skip
def test_plugins_are_explored(
    mmrace_run: Callable[..., RunResult],
    mmrace: Callable[..., int],
    factory: str,
    tasks: int,
    verdict: str,
) -> None:
    target = f"stress.selftest.lockfree:{factory}"
    argv = ["same-page", "--target", target, "--tasks", str(tasks), "--scheduler", "exhaustive"]
    code, summary = mmrace_run(*argv, "--preemptions", "2", "--no-report", name=factory)
    assert summary["verdict"] == verdict
    e = summary["exploration"]
    assert e["state_caching"] is False and e["pruned"] == 0
    if verdict == "OK":
        assert code == 0 and e["complete"]
    else:
        assert code == 1 and e["first_failure"]["round"] == summary["rounds"] - 1
        assert mmrace("replay", summary["run_dir"], "--no-progress") == 1
