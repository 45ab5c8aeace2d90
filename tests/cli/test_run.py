"""`mmrace run` and `mmrace replay` from the command line: output, files, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stress.cli import main
from stress.history import load_history


def test_default_run_is_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr()
    assert "verdict    OK" in text.out
    assert "seed " in text.err  # the random seed is printed at the start
    assert f"report     {out / 'report.html'}" in text.out  # the report, by default
    assert "<!DOCTYPE html>" in (out / "report.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["workload"] == "same-page" and summary["target"] == "model"
    assert summary["tasks"] == 16 and summary["rounds"] == 300
    assert summary["check"]["verdict"] == "OK"
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == summary["seed"]


@pytest.mark.parametrize("scheduler", ["random", "pct"])
def test_replay_reproduces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scheduler: str
) -> None:
    out = tmp_path / "run"
    args = ["run", "--out", str(out), "--no-progress", "--seed", "11", "--rounds", "40"]
    args.append("--no-report")
    assert main([*args, "--scheduler", scheduler, "--tasks", "5"]) == 0
    capsys.readouterr()
    assert main(["replay", str(out), "--no-progress"]) == 0
    assert "identical to the original (320 operations)" in capsys.readouterr().out
    # a tampered history no longer matches
    lines = (out / "history.jsonl").read_text().splitlines()
    op = json.loads(lines[3])  # line 0 is the header: this is operation 2
    op["x"] = -22 if op["x"] != -22 else -17
    lines[3] = json.dumps(op)
    (out / "history.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["replay", str(out), "--no-progress"]) == 3
    assert "DIFFERS at operation 2" in capsys.readouterr().out


def test_json_output_and_trio_scheduler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fast"
    argv = ["run", "--out", str(out), "--no-progress", "--scheduler", "trio", "--json"]
    argv.append("--no-report")
    assert main([*argv, "--rounds", "50", "--tasks", "8", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clock"] == "ns" and summary["verdict"] == "OK"
    assert summary["operations"] == 50 * 11 and summary["replay"] is None
    assert not (out / "schedule.jsonl").exists()
    assert main(["replay", str(out)]) == 2  # not replayable: nothing recorded


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-such-workload"], "unknown"),
        (["--target", "warp-drive"], "--target: unknown target"),
        (["--tasks", "0"], "--tasks: must be at least 1"),
        (["--rounds", "many"], "--rounds: 'many' is not an integer"),
        (["--time-budget", "-1"], "--time-budget: must be at least"),
        (["--scheduler", "fifo"], "--scheduler: unknown scheduler"),
        (["--target", "model-threads", "--scheduler", "pct"], "only the model target"),
        (["--check-timeout", "nan"], "--check-timeout"),
        (["--variant", "no-such-bug"], "--variant"),
        (["missing.toml"], "no such file"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["run", "--out", str(tmp_path / "x"), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)


def test_refuses_to_overwrite_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "once"
    argv = ["run", "--out", str(out), "--no-progress", "--rounds", "2", "--no-report"]
    assert main(argv) == 0
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "nowhere")]) == 2


def test_ctrl_c_stops_cleanly_with_exit_3(tmp_path: Path) -> None:
    out = tmp_path / "sig"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    argv = [sys.executable, "-m", "stress", "run", "--out", str(out), "--no-progress"]
    argv.append("--no-report")
    proc = subprocess.Popen(
        [*argv, "--time-budget", "60", "--tasks", "4", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    history = out / "history.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if history.exists() and history.stat().st_size > 50_000:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr
    assert "INCOMPLETE: interrupted (Ctrl-C)" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] == "interrupted (Ctrl-C)"
    assert summary["check"]["verdict"] == "OK" and summary["rounds"] > 0
    assert summary["operations"] == summary["check"]["operations"]


def test_bug_variant_is_found_and_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bug"
    argv = ["run", "--out", str(out), "--no-progress", "--variant", "check-then-act"]
    junit = tmp_path / "bug.xml"
    argv += ["--no-report", "--junit", str(junit)]
    assert main([*argv, "--tasks", "4", "--rounds", "10", "--seed", "2"]) == 1
    text = capsys.readouterr().out
    assert "verdict    VIOLATION" in text and "counterexample:" in text
    assert f"reproduce: mmrace replay {out}" in text
    assert not (out / "report.html").exists()  # --no-report
    assert f"junit      {junit}" in text
    xml = junit.read_text()
    assert '<testcase classname="mmrace.bug" name="linearizability"' in xml
    assert "<failure" in xml
    assert main(["replay", str(out), "--no-progress"]) == 1
    assert "identical to the original" in capsys.readouterr().out


def test_replay_of_a_tampered_schedule_diverges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--no-progress", "--rounds", "5", "--tasks", "3"]
    assert main([*argv, "--no-report"]) == 0
    lines = (out / "schedule.jsonl").read_text().splitlines()
    lines[2] = json.dumps({"round": 2, "choices": [0, 0, 0, 0, 0, 0, 0, 0]})
    (out / "schedule.jsonl").write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["replay", str(out), "--no-progress"]) == 3
    assert "schedule diverged" in capsys.readouterr().out


def test_unprivileged_model_is_recorded_and_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "unpriv"
    argv = ["run", "zero-page", "--out", str(out), "--no-progress", "--no-report", "--json"]
    assert main([*argv, "--unprivileged", "--tasks", "3", "--rounds", "12", "--seed", "4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["grading"]["privileged"] is False
    run = json.loads((out / "run.json").read_text())
    assert run["privileged"] is False and run["params"]["privileged"] is False
    header, ops = load_history(out / "history.jsonl")
    assert header.privileged is False
    # without CAP_SYS_RAWIO page 0 is refused: some call got EPERM (-1)
    assert any(op.result == -1 for op in ops)
    assert main(["replay", str(out), "--no-progress"]) == 0  # the same machine again
    assert "identical to the original" in capsys.readouterr().out
    assert json.loads((out / "replay" / "run.json").read_text())["privileged"] is False


def test_privileged_model_maps_page_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "priv"
    argv = ["run", "zero-page", "--out", str(out), "--no-progress", "--no-report"]
    assert main([*argv, "--privileged", "--tasks", "3", "--rounds", "12", "--seed", "4"]) == 0
    header, ops = load_history(out / "history.jsonl")
    assert header.privileged is True and not any(op.result == -1 for op in ops)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")
@pytest.mark.parametrize("target", ["kernel", "agent"])
def test_real_targets_refuse_a_privilege_they_do_not_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    import mm
    import mm.kernel

    flag = "--unprivileged" if mm.kernel.has_cap_sys_rawio() else "--privileged"
    argv = ["run", "--target", target, "--out", str(tmp_path / "x"), "--no-progress", flag]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"error: {flag}: the {target} target runs" in err[0]
