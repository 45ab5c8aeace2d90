"""Plug-ins under the controlled scheduler: unmodified code (no yield point) is preempted at its
own lines (sync) or awaits (async), replays identically, and every way it can misbehave (a
deadlock, a call that never returns, an exit, a spin, code that cannot be traced) is reported,
never passed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

import mm
from stress.harness import TargetOptions
from stress.harness._plugin import PluginTarget
from stress.history import load_history
from tests.conftest import RunResult

LOCKFREE = "stress.selftest.lockfree"
PLUGINS = Path(__file__).parent / "plugins"
PROJECT = Path(__file__).resolve().parents[2]


def race(
    mmrace_run: Callable[..., RunResult], target: str, *more: str, tasks: int = 4, rounds: int = 40
) -> RunResult:
    argv = ["same-page", "--target", target, "--tasks", str(tasks), "--rounds", str(rounds)]
    return mmrace_run(*argv, "--seed", "1", "--no-report", *more, name=target.replace(":", "-"))


@pytest.mark.parametrize("factory", ["nolock", "nolock_async"])
def test_lock_free_plugin_is_caught_and_its_replay_is_identical(
    mmrace_run: Callable[..., RunResult],
    mmrace: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    factory: str,
) -> None:
    code, summary = race(mmrace_run, f"{LOCKFREE}:{factory}", tasks=8, rounds=30)
    assert code == 1 and summary["verdict"] == "VIOLATION"
    assert summary["clock"] == "steps" and summary["target_info"]["controlled"] is True
    assert summary["double_wins"] > 0
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "schedule.jsonl").is_file()
    capsys.readouterr()
    assert mmrace("replay", run_dir, "--no-progress") == 1
    out = capsys.readouterr().out
    assert "history: identical to the original" in out
    _, original = load_history(run_dir / "history.jsonl")
    _, replayed = load_history(run_dir / "replay" / "history.jsonl")
    # per round: 8 probes, the cleanup munmap, the footprint check (a probe and its munmap)
    assert original == replayed and len(original) == 30 * 11


@pytest.mark.parametrize(
    "target",
    [
        f"{LOCKFREE}:locked",
        f"{LOCKFREE}:locked_async",
        "demo:condvar",  # Condition + Event + Semaphore
        "demo:semaphore_async",  # trio.Semaphore + trio.Event
        "demo:foreign_lock",  # a real lock made outside the plug-in, adopted
    ],
)
def test_correct_plugin_passes_with_rounds_that_really_raced(
    mmrace_run: Callable[..., RunResult], target: str
) -> None:
    code, summary = race(mmrace_run, target)
    assert code == 0, summary["reasons"]
    assert summary["overlap"]["rounds"] == summary["rounds"] == 40
    scheduling = summary["target_info"]["scheduling"]
    assert scheduling["preempted"] > 0  # the strategy switched tasks inside the calls
    assert scheduling["blocked"] > 0  # and a task really waited for another's lock


def test_foreign_locks_are_adopted_only_when_provably_unshared() -> None:
    import helperlib  # a "library" imported before the plug-in: its locks are real ones

    adopted = PluginTarget(TargetOptions(spec="demo:foreign_lock"))
    left = PluginTarget(TargetOptions(spec="demo:foreign_lock_shared"))
    try:
        assert adopted.describe["adopted_locks"] == ["ForeignLock.lock"]
        assert left.describe["adopted_locks"] is None
        assert left.describe["foreign_locks"] == ["ForeignLock.lock (3 references)"]  # + _KEEP
        assert left.impl.lock is helperlib.SHARED
    finally:
        trio.run(adopted.aclose)
        trio.run(left.aclose)


def test_a_real_lock_the_scheduler_cannot_see_ends_unknown(
    mmrace_run: Callable[..., RunResult],
) -> None:
    import helperlib

    assert helperlib.SHARED is not None  # imported first: a real lock, shared with the library
    code, summary = race(mmrace_run, "demo:foreign_lock_shared", "--call-timeout", "0.3")
    assert code == 3 and summary["verdict"] == "UNKNOWN"
    assert "reached no preemption point" in summary["problems"][0]


@pytest.mark.parametrize("target", ["demo:abba", "demo:abba_async"])
def test_deadlock_is_reported_with_the_tasks_and_where_they_wait(
    mmrace_run: Callable[..., RunResult], target: str
) -> None:
    code, summary = race(mmrace_run, target, rounds=200)
    assert code == 3 and summary["verdict"] == "UNKNOWN"
    problem = summary["problems"][0]
    assert problem.startswith("deadlock: task ")
    assert problem.count("demo.py:") >= 2  # every blocked task, and where
    assert "mmap(0x" in problem


@pytest.mark.parametrize("target", ["demo:sleepy", "demo:sleepy_async"])
def test_a_call_past_its_deadline_is_pending_and_named(
    mmrace_run: Callable[..., RunResult], target: str
) -> None:
    code, summary = race(mmrace_run, target, "--call-timeout", "0.3")
    assert code == 3 and summary["verdict"] == "UNKNOWN"
    problem = summary["problems"][0]
    assert "'s mmap(0x" in problem and "did not return" in problem
    assert "demo.py:" in problem and "recorded as pending" in problem
    _, ops = load_history(Path(summary["run_dir"]) / "history.jsonl")
    assert any(op.ret is None for op in ops)


def test_the_time_budget_ends_a_stuck_call(mmrace_run: Callable[..., RunResult]) -> None:
    argv = ["same-page", "--target", "demo:sleepy", "--tasks", "2", "--time-budget", "0.5"]
    code, summary = mmrace_run(*argv, "--seed", "1", "--no-report")  # call deadline: 10 s
    assert code == 3
    assert "the time budget ran out" in summary["problems"][0]


@pytest.mark.parametrize("target", ["demo:exits", "demo:exits_async"])
def test_an_exit_from_the_plugin_is_reported_not_success(
    mmrace_run: Callable[..., RunResult], target: str
) -> None:
    code, summary = race(mmrace_run, target)
    assert code == 3 and summary["verdict"] == "UNKNOWN"
    assert "the plug-in tried to end the process: os._exit(0) (task " in summary["problems"][0]


def test_a_spin_loop_hits_the_step_cap(mmrace_run: Callable[..., RunResult]) -> None:
    code, summary = race(mmrace_run, "demo:spinner", tasks=2, rounds=1)
    assert code == 3
    assert "preemption points in one round" in summary["problems"][0]


def test_untraceable_plugin_runs_free_and_says_its_interleavings_were_not_controlled(
    mmrace_run: Callable[..., RunResult],
) -> None:
    code, summary = race(mmrace_run, "demo:cext", rounds=20)
    info = summary["target_info"]
    assert info["controlled"] is False and "NOT controlled" in info["flavour"]
    assert info["untraceable"] == [
        "CExt.mmap (partial)",
        "CExt.munmap (partial)",
        "CExt.mprotect (partial)",
    ]
    assert any("interleavings were not controlled" in w for w in summary["warnings"])
    assert summary["clock"] == "ns" and summary["replay"] is None
    if summary["overlap"]["rounds"] == 0:  # the usual case: the calls never overlapped
        assert code == 3 and "no round really raced" in summary["reasons"][0]
        assert "not Python code mmrace can trace" in summary["reasons"][0]


def test_a_free_run_cannot_be_replayed(
    mmrace_run: Callable[..., RunResult],
    mmrace: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, summary = race(mmrace_run, f"{LOCKFREE}:locked", "--scheduler", "free", rounds=5)
    capsys.readouterr()
    assert mmrace("replay", summary["run_dir"], "--no-progress") == 2
    assert "with scheduler free cannot be replayed" in capsys.readouterr().err


def test_line_granularity_cannot_split_a_line_opcode_granularity_can(
    mmrace_run: Callable[..., RunResult],
) -> None:
    lines = race(mmrace_run, "demo:oneliner", "--scheduler", "exhaustive", tasks=2, rounds=1)
    assert lines[0] == 0 and lines[1]["exploration"]["complete"]
    argv = ["same-page", "--target", "demo:oneliner", "--tasks", "2", "--scheduler", "exhaustive"]
    code, summary = mmrace_run(*argv, "--granularity", "opcode", "--no-report", name="opcodes")
    assert code == 1 and summary["verdict"] == "VIOLATION"
    assert "every opcode" in summary["target_info"]["flavour"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--target", "demo:condvar", "--scheduler", "trio"],
            "--scheduler trio: not for a plug-in",
        ),
        (["--scheduler", "free"], "--scheduler free: not for the model target"),
        (["--target", "kernel", "--scheduler", "pct"], "only the model target and plug-ins"),
        (["--granularity", "opcode"], "--granularity: only plug-ins are traced"),
        (["--preemptions", "1"], "--preemptions: only with --scheduler exhaustive"),
        (["--call-timeout", "1"], "--call-timeout: only plug-in calls"),
        (["--target", "demo:cext", "--scheduler", "exhaustive"], "schedules cannot be explored"),
    ],
)
def test_scheduling_options_are_checked(
    mmrace: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: list[str],
    message: str,
) -> None:
    assert mmrace("run", *argv, "--out", tmp_path / "run", "--no-progress") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def _start(target: str, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), str(PROJECT)])}
    argv = ["run", "same-page", "--target", target, "--tasks", "4", "--rounds", "100"]
    argv += ["--out", str(out), "--no-progress", "--no-report", "--call-timeout", "120"]
    return subprocess.Popen(
        [sys.executable, "-m", "stress", *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("target", ["demo:sleepy", "demo:sleepy_async"])
def test_ctrl_c_ends_a_run_whose_plugin_call_sleeps(tmp_path: Path, target: str) -> None:
    proc = _start(target, tmp_path / "run")
    history = tmp_path / "run" / "history.jsonl"
    for _ in range(600):  # the header is written when the rounds start
        if history.is_file() or proc.poll() is not None:
            break
        time.sleep(0.05)
    time.sleep(0.5)  # inside the first round: one task asleep in the plug-in
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=100)  # the call deadline is 120 s: Ctrl-C must end it
    assert proc.returncode == 3, out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert "interrupted (Ctrl-C)" in summary["problems"][0]
    assert summary["interrupted"] == "interrupted (Ctrl-C)"


def test_isolate_reports_a_process_exit_no_guard_can_see(
    mmrace: Callable[..., int], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    argv = ["run", "same-page", "--target", "demo:c_exits", "--tasks", "4", "--rounds", "10"]
    code = mmrace(*argv, "--out", out, "--no-progress", "--no-report", "--isolate")
    assert code == 3
    text = capsys.readouterr().out
    assert "the run's process exited with status 0 before writing its verdict" in text
    assert not (out / "summary.json").exists()


def test_serial_calls_run_under_the_scheduler_too() -> None:
    """Setup and cleanup calls go through the same scheduler (deadline, exit guard): a
    sleeping setup call makes the target dead, with the problem kept for the end."""

    async def go() -> None:
        from workloads import Space

        target = PluginTarget(TargetOptions(spec="demo:sleepy", timeout=0.3))
        await target.open(2, Space())
        try:
            op = mm.Op.mmap(0x100000000000, 4096, mm.PROT_READ, mm.NR)
            records = await target.run_serial(0, [op])
            assert [r.ret for r in records] == [None]
            assert target.dead and "did not return" in target.late_problems[0]
            assert await target.run_serial(0, [op]) == []  # nothing more runs
        finally:
            await target.aclose()

    trio.run(go)


def test_the_patches_last_exactly_as_long_as_the_plugin_target(
    mmrace: Callable[..., int], tmp_path: Path
) -> None:
    import threading

    from stress.harness import _trace

    real = _trace._REAL_LOCK
    assert threading.Lock is real and os._exit is _trace._REAL_EXIT["_exit"]
    target = PluginTarget(TargetOptions(spec="demo:condvar"))
    assert threading.Lock is not real  # caller-sensitive factories while the target is open
    assert type(target.impl.cond).__name__ == "SCondition"  # made by plug-in code: aware
    assert isinstance(threading.Lock(), type(real()))  # made here: a real lock
    trio.run(target.aclose)
    assert threading.Lock is real and os._exit is _trace._REAL_EXIT["_exit"]
    # a run that stops at bad input before its first round closes the target too
    big = tmp_path / "big.toml"
    big.write_text(
        'name = "big"\nsummary = "too big for the arena"\n[[race]]\nkind = "mmap"\n'
        'offset = 0\npages = 1000000000\n[[grades]]\nverdict = "ACCEPTABLE"\n'
        'when = "true"\ndescription = "anything"\n'
    )
    argv = ["run", big, "--target", "demo:condvar", "--out", tmp_path / "run", "--no-progress"]
    assert mmrace(*argv) == 2
    assert threading.Lock is real
