"""The agent target: `python -m stress.agent` (or the static native agent, `--agent native`) in
a child process, healthy, dying and hanging: every test runs with both agents."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import mm
from stress.cli import main
from stress.history import load_history
from tests.conftest import RunResult
from tests.helpers import assert_judged_ok

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux"),
]

B = 0x100000000000
P = 4096


@pytest.fixture(params=["python", "native"])
def agent(request: pytest.FixtureRequest) -> str:
    """Which agent the child is (`--agent`)."""
    return str(request.param)


def run(
    mmrace_run: Callable[..., RunResult], agent: str, *extra: str, rounds: int = 20
) -> RunResult:
    argv = ["same-page", "--target", "agent", "--agent", agent, "--tasks", "4"]
    return mmrace_run(*argv, "--rounds", str(rounds), "--seed", "5", *extra)


def test_plain_child_is_judged_ok(
    tmp_path: Path,
    mmrace_run: Callable[..., RunResult],
    capsys: pytest.CaptureFixture[str],
    agent: str,
) -> None:
    code, summary = run(mmrace_run, agent)
    assert summary["problems"] == [], capsys.readouterr()
    assert_judged_ok(code, summary)
    # 4 racing probes, 1 cleanup and the footprint check (probe and munmap) per round
    assert summary["operations"] == 20 * 7
    info = summary["target_info"]
    assert info["agent"]["uname"][0] == "Linux"
    assert isinstance(info["agent"]["pid"], int)
    assert info["agent"]["kind"] == agent
    assert (info["agent"]["python"] is None) == (agent == "native")
    header, ops = load_history(tmp_path / "run" / "history.jsonl")
    assert header.target == "agent"
    assert all(op.result is not None for op in ops)


def test_wrapper_is_a_command_prefix(
    mmrace_run: Callable[..., RunResult], capsys: pytest.CaptureFixture[str], agent: str
) -> None:
    code, summary = run(mmrace_run, agent, "--wrapper", "env MMRACE_WRAPPED=1", rounds=5)
    assert summary["problems"] == [], capsys.readouterr()
    assert_judged_ok(code, summary)
    assert summary["target_info"]["wrapper"] == "env MMRACE_WRAPPED=1"


@pytest.mark.parametrize(
    ("fault", "how"),
    [
        ("kill:3", "was killed by signal 9 (SIGKILL)"),
        ("exit:3", "exited with status 3"),
        ("hang:3", "sent no answer within 1 s (killed)"),
    ],
)
def test_dying_child_leaves_pending_calls_and_an_unknown_verdict(
    tmp_path: Path,
    mmrace_run: Callable[..., RunResult],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
    how: str,
    agent: str,
) -> None:
    monkeypatch.setenv("MMRACE_AGENT_FAULT", fault)
    monkeypatch.setenv("MMRACE_AGENT_TIMEOUT", "1")
    code, summary = run(mmrace_run, agent, rounds=8)
    assert code == 3, capsys.readouterr()
    assert summary["verdict"] == "UNKNOWN"
    assert summary["problems"] == [f"agent {how} (in round 3, race)"]
    assert any(how in reason for reason in summary["reasons"])
    _header, ops = load_history(tmp_path / "run" / "history.jsonl")
    pending = [op for op in ops if op.result is None]
    assert len(pending) == 4  # round 3's four racing calls got no answer
    assert {op.round for op in pending} == {3} and all(op.ret is None for op in pending)
    assert max(op.round for op in ops) == 3  # nothing was sent to the dead agent afterwards


def test_missing_wrapper_is_a_one_line_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["run", "--target", "agent", "--wrapper", "/nonexistent/qemu-x86_64 -L /", "--out"]
    assert main([*argv, str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "mmrace run: error: --wrapper /nonexistent/qemu-x86_64 -L /: cannot start "
        "'/nonexistent/qemu-x86_64': not found"
    ]


def test_wrapper_that_fails_at_once_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    script = tmp_path / "broken-sandbox"
    script.write_text("#!/bin/sh\necho 'sandbox: no such profile' >&2\nexit 7\n")
    script.chmod(0o755)
    argv = ["run", "--target", "agent", "--wrapper", str(script), "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "exited with status 7 without a hello (sandbox: no such profile)" in err[0]


async def test_library_use_and_serial_death(agent: str) -> None:
    """Direct use: records carry the child's stamps; a death in a serial batch is reported by
    the next race, and later batches are never sent."""
    from stress.harness._agent import AgentTarget
    from stress.harness._target import TargetOptions
    from workloads import Space

    target = AgentTarget(TargetOptions(spec="agent", agent=agent), timeout=5)
    assert target.params.page_size == P
    await target.open(3, Space(B, 1 << 24, P))
    try:
        setup = await target.run_serial(0, [mm.Op.mmap(B + 4 * P, P, mm.PROT_NONE, mm.NR)])
        assert [c.result for c in setup] == [B + 4 * P]
        grab = [[mm.Op.mmap(B, P, mm.PROT_READ, mm.NR)] for _ in range(3)]
        outcome = await target.run_race(0, grab)
        assert sorted(c.result or 0 for c in outcome.records) == [-mm.EEXIST, -mm.EEXIST, B]
        assert outcome.problems == []
        assert all(c.ret is not None and c.call <= c.ret for c in outcome.records)
        assert min(c.call for c in outcome.records) > (setup[0].ret or 0)  # one clock: the child's
        assert target._proc is not None
        target._proc.kill()  # the child dies between rounds
        cleanup = await target.run_serial(0, [mm.Op.munmap(B, 5 * P)])
        assert [c.result for c in cleanup] == [None]
        assert await target.run_serial(1, [mm.Op.munmap(B, P)]) == []
        nxt = await target.run_race(1, grab)
        assert nxt.records == []
        assert nxt.problems == ["agent was killed by signal 9 (SIGKILL) (in round 0, serial)"]
    finally:
        await target.aclose()


def test_native_agent_reports_interference(
    mmrace_run: Callable[..., RunResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page mapped in the native agent's arena behind its back (the test switch
    ``intrude:R`` maps one before race R's check) is interference: the run is UNKNOWN."""
    monkeypatch.setenv("MMRACE_AGENT_FAULT", "intrude:2")
    code, summary = run(mmrace_run, "native", rounds=4)
    assert (code, summary["verdict"]) == (3, "UNKNOWN")
    [problem] = summary["problems"]
    assert problem.startswith("interference: [0x10003ffff000, 0x100040000000)")
    assert problem.endswith("is mapped inside the arena but this run never mapped it")
