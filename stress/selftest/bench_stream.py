"""`mmrace bench stream`: judging campaigns of hours in bounded memory (issue 14).

Three figures:
- the tail: from the end of a race (its last round) to the report written, for a run of
  ``--seconds`` on the model and on the kernel target (churn, 8 tasks); the target is 10% of
  the race time plus 10 s, with the run's peak resident memory (race and judge process) beside;
- `mmrace check` on a synthetic history of ``ops`` operations written here (rounds of 8 racing
  NOREPLACE probes of one page, one wins, and the munmap), run as its own process: its time
  (target 60 s) and its peak resident memory (target 1 GB);
- the live first-violation latency: a model run with a bug variant; from the end of the round
  the violation completes in to the moment the race's process learns of it (target 1 s).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import mm
import workloads
from stress.driver import perform, write_reports
from stress.harness import RoundLog, RunConfig, RunStats, TargetOptions, make_target
from stress.selftest._figure import Figure

GB = 1 << 30
BASE = 0x100000000000
TASKS = 8
SPREAD = 1 << 18  # pages of the arena the synthetic rounds move over


def _mb(kilobytes: int) -> float:
    return kilobytes / 1024


def tail(spec: str, seconds: float, out: Path) -> list[Figure]:
    """A timed churn run on ``spec``: end of race to report written, and peak memory."""
    options = TargetOptions(spec=spec, seed=1)
    target = make_target(options)
    config = RunConfig(workloads.get("churn"), "churn", options, TASKS, None, seconds, out)
    last = [time.monotonic()]

    def on_round(stats: RunStats, log: RoundLog) -> None:
        last[0] = time.monotonic()

    summary = perform(config, target, check_timeout=600, handle_sigint=False, on_round=on_round)
    judged = time.monotonic()
    write_reports(out, html=True, junit=None)
    took = time.monotonic() - last[0]
    reported = time.monotonic() - judged
    limit = 0.1 * summary["seconds"] + 10
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    judge = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    judged = summary["judge"]
    note = (
        f"{summary['operations']:,} ops in {summary['seconds']:.0f} s, verdict "
        f"{summary['verdict']}; judge's tail {summary['phase_seconds']['judge_tail']:.1f} s, "
        f"summary and report {reported:.1f} s; "
        f"grading {summary['phase_seconds']['grade']:.0f} s and checking "
        f"{summary['phase_seconds']['check']:.0f} s in the judge process; verdict "
        f"{summary['verdict']}; live judge {judged['live']}, {judged['segments']:,} segments "
        f"(largest {judged['largest_segment']} calls); peak RSS race {_mb(me):,.0f} MB, "
        f"judge {_mb(judge):,.0f} MB"
    )
    return [
        Figure(
            f"{spec} run, {seconds:g} s: end of race to report written",
            round(took, 2),
            "s",
            round(limit, 1),
            took <= limit and summary["check"]["verdict"] == "OK",
            note,
        ),
        Figure(
            f"{spec} run, {seconds:g} s: peak resident memory (race or judge)",
            round(_mb(max(me, judge)), 1),
            "MB",
            1024,
            max(me, judge) * 1024 <= GB,
        ),
    ]


def synthetic(path: Path, ops: int) -> int:
    """Write a history of about ``ops`` operations: serial rounds of TASKS probes and a munmap."""
    params = mm.Params.reference()
    page = params.page_size
    flags = mm.NR
    prot = mm.PROT_READ | mm.PROT_WRITE
    header = (
        '{"mmrace_history":1,"target":"model","workload":"same-page","tool":"bench",'
        f'"params":{_json(params.to_json())}}}\n'
    )
    per = TASKS + 1
    rounds = max(1, ops // per)
    written = 0
    with path.open("w", encoding="utf-8") as f:
        f.write(header)
        chunk: list[str] = []
        for r in range(rounds):
            addr = BASE + (r % SPREAD) * page  # round bases vary, as a workload's do
            t = r * 1000
            for k in range(TASKS):
                x = addr if k == r % TASKS else -mm.EEXIST
                chunk.append(
                    f'{{"t":{k},"r":{r},"k":"mmap","a":{addr},"n":{page},"p":{prot},'
                    f'"f":{flags},"c":{t + k},"e":{t + 100 + k},"x":{x}}}\n'
                )
            chunk.append(
                f'{{"t":0,"r":{r},"k":"munmap","a":{addr},"n":{page},"c":{t + 200},'
                f'"e":{t + 210},"x":0}}\n{{"round":{r},"setup":0,"race":{TASKS}}}\n'
            )
            written += per
            if len(chunk) >= 20_000:
                f.write("".join(chunk))
                chunk.clear()
        chunk.append(f'{{"end":{{"operations":{written}}}}}\n')
        f.write("".join(chunk))
    return written


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def check_big(ops: int, where: Path) -> list[Figure]:
    """`mmrace check` on a synthetic history, in a process of its own: time and peak RSS."""
    path = where / "big.jsonl"
    started = time.monotonic()
    written = synthetic(path, ops)
    wrote = time.monotonic() - started
    size = path.stat().st_size
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "stress", "check", str(path), "--no-minimize"],
        stdout=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(child.pid, 0)
    took = time.monotonic() - started
    out = child.stdout.read() if child.stdout else ""
    verdict = out.split(":", 1)[0]
    rss = usage.ru_maxrss
    path.unlink()
    note = (
        f"{written:,} ops, {size / GB:.1f} GB written in {wrote:.0f} s; verdict {verdict} "
        f"(exit {os.waitstatus_to_exitcode(status)}); CPU {usage.ru_utime + usage.ru_stime:.1f} s "
        f"({1e6 * (usage.ru_utime + usage.ru_stime) / written:.1f} µs a call), load "
        f"{os.getloadavg()[0]:.1f}"
    )
    return [
        Figure(
            f"mmrace check, {written / 1e6:g}M operations: time",
            round(took, 1),
            "s",
            60,
            took <= 60 and verdict == "OK",
            note,
        ),
        Figure(
            f"mmrace check, {written / 1e6:g}M operations: peak resident memory",
            round(_mb(rss), 1),
            "MB",
            1024,
            rss * 1024 <= GB,
        ),
    ]


def latency(out: Path, rounds: int = 2000) -> Figure:
    """The live judge's first violation: end of its round to this process knowing it."""
    options = TargetOptions(spec="model", seed=1, variant="check-then-act")
    target = make_target(options)
    config = RunConfig(workloads.get("same-page"), "same-page", options, TASKS, rounds, None, out)
    ends: dict[int, float] = {}

    def on_round(stats: RunStats, log: RoundLog) -> None:
        ends[log.index] = time.monotonic()

    from stress.driver import Live

    seen: list[Live] = []

    def progress(stats: RunStats, live: Live) -> None:
        if not seen:
            seen.append(live)

    summary = perform(
        config,
        target,
        check_timeout=60,
        handle_sigint=False,
        on_round=on_round,
        progress=progress,
        stop_on_violation=False,
    )
    live = seen[0] if seen else None
    first = summary["judge"]["first_violation"]
    if live is None or first is None or live.violation_seen is None:
        return Figure("live first violation: end of its round to reported", 0, "s", 1, False)
    took = live.violation_seen - ends[first["round"]]
    return Figure(
        "live first violation: end of its round to reported",
        round(took, 3),
        "s",
        1,
        took <= 1 and summary["verdict"] == "VIOLATION",
        f"round {first['round']} of {rounds}; the race starts once the judge process is up",
    )


def run(seconds: float = 300, ops: int = 50_000_000, kernel: bool = True) -> list[Figure]:
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="mmrace-bench-stream-") as tmp:
        where = Path(tmp)
        figures.append(latency(where / "latency"))
        figures.extend(check_big(ops, where))
        figures.extend(tail("model", seconds, where / "model"))
        if kernel:
            figures.extend(tail("kernel", seconds, where / "kernel"))
    return figures
