"""Exit codes a CI can trust: a closed stdout, Ctrl-C and SIGTERM never turn a verdict into
success; an interrupted run keeps its history, is judged as incomplete and exits 3.

The processes are real (`python -m stress`), the pipes real pipes and the signals real signals;
each test waits for a marker on disk (never a fixed sleep) with generous start-up deadlines.
"""

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

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
START = 120.0  # seconds a child may take to reach its marker (a loaded machine is slow)


def closed_stdout(*argv: str, cwd: Path) -> tuple[int, str]:
    """Run mmrace with stdout a pipe whose reader is gone before the first write."""
    read, write = os.pipe()
    os.close(read)  # every write to stdout now meets EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "stress", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
            cwd=cwd,
            timeout=300,
        )
    finally:
        os.close(write)
    return proc.returncode, proc.stderr


def test_closed_stdout_keeps_the_violation_and_writes_the_files(tmp_path: Path) -> None:
    out = tmp_path / "bug"
    argv = ["run", "--variant", "check-then-act", "--rounds", "20", "--tasks", "4"]
    code, err = closed_stdout(
        *argv, "--seed", "1", "--out", str(out), "--no-progress", cwd=tmp_path
    )
    assert code == 1, err
    assert "Traceback" not in err and "Broken pipe" not in err
    assert json.loads((out / "summary.json").read_text())["verdict"] == "VIOLATION"
    assert (out / "report.html").is_file()
    # and `mmrace check BAD | head` is the same violation
    code, err = closed_stdout("check", str(out / "history.jsonl"), cwd=tmp_path)
    assert code == 1 and "Traceback" not in err, err


def test_closed_stdout_early_in_a_pipe_keeps_the_exit_code(tmp_path: Path) -> None:
    """`mmrace check BAD | head -1`: the reader takes a line and goes; the code stays 1."""
    out = tmp_path / "bug"
    argv = ["run", "--variant", "check-then-act", "--rounds", "20", "--tasks", "4", "--seed", "2"]
    subprocess.run(
        [sys.executable, "-m", "stress", *argv, "--out", str(out), "--no-progress"],
        env=ENV,
        capture_output=True,
        timeout=300,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "stress", "check", str(out / "history.jsonl")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"VIOLATION")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 1, err
    assert "Traceback" not in err


def wait_for(what: Callable[[], bool], proc: subprocess.Popen[str], label: str) -> None:
    deadline = time.monotonic() + START
    while not what():
        if proc.poll() is not None:
            raise AssertionError(f"the child ended before {label}: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {label} within {START:g} s")
        time.sleep(0.01)


def start_run(out: Path, *extra: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "stress", "run", "--out", str(out), "--no-progress"]
    return subprocess.Popen(
        [*argv, "--tasks", "8", "--seed", "1", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def has_trailer(history: Path) -> bool:
    return (
        history.is_file()
        and history.read_bytes().rstrip().endswith(b"}}")
        and (b'{"end":' in history.read_bytes()[-400:])
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_in_the_race_keeps_and_judges_the_history(
    tmp_path: Path, signum: signal.Signals
) -> None:
    out = tmp_path / "sig"
    proc = start_run(out, "--time-budget", "120", "--no-report")
    history = out / "history.jsonl"
    wait_for(lambda: history.is_file() and history.stat().st_size > 20_000, proc, "race")
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=300)
    name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    assert proc.returncode == 3, stderr
    assert f"INCOMPLETE: interrupted ({name})" in stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "UNKNOWN" and summary["interrupted"] == f"interrupted ({name})"
    assert summary["check"]["operations"] == summary["operations"] > 0
    assert has_trailer(history)  # the history was closed properly


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_after_the_race_is_judged_as_incomplete(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """Sent as soon as the race has ended (the trailer is written): the grading, check or
    report phase is interrupted, the run says which, and an OK becomes UNKNOWN (exit 3)."""
    out = tmp_path / "late"
    proc = start_run(out, "--time-budget", "4")
    history = out / "history.jsonl"
    wait_for(lambda: has_trailer(history), proc, "the end of the race")
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, (stdout, stderr)
    assert "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["verdict"] == "UNKNOWN" and summary["exit_code"] == 3
    name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
    # (while closing the race, grading, checking or writing the report)
    assert summary["interrupted"].startswith(f"interrupted ({name})")


def test_a_signal_in_the_report_phase_is_judged_as_incomplete(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = start_run(out, "--rounds", "30")
    wait_for(lambda: (out / "summary.json").is_file(), proc, "the summary")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, (stdout, stderr)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] == "interrupted (SIGTERM) while writing the report"
    assert summary["verdict"] == "UNKNOWN"
    assert "verdict    UNKNOWN: interrupted (SIGTERM) while writing the report" in stdout


def test_check_of_a_history_without_trailer_is_never_ok(tmp_path: Path) -> None:
    from stress.cli import main

    out = tmp_path / "ok"
    assert main(["run", "--out", str(out), "--no-progress", "--rounds", "5", "--no-report"]) == 0
    lines = (out / "history.jsonl").read_text().splitlines()
    assert lines[-1].startswith('{"end":')
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[:-1]) + "\n")
    assert main(["check", str(cut)]) == 3
    assert main(["check", str(out / "history.jsonl")]) == 0


@pytest.mark.parametrize(("verdict", "code"), [("OK", 0), ("VIOLATION", 1), ("UNKNOWN", 3)])
def test_report_exits_with_the_runs_code(tmp_path: Path, verdict: str, code: int) -> None:
    from stress.cli import main

    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--no-progress", "--rounds", "3", "--no-report"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    summary.update(verdict=verdict, exit_code=code)
    (out / "summary.json").write_text(json.dumps(summary))
    assert main(["report", str(out)]) == code
