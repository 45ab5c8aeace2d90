"""The run's report: DIR/summary.json (schema in docs/harness.md) and the text a user reads."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from stress.harness.runner import MODES, RunConfig, RunStats
from stress.harness.verdict import OK, UNKNOWN, VIOLATION, Judgement

SUMMARY_VERSION = 1
SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"
LOW_OVERLAP = 0.1
OVERLAP_DEFINITION = (
    "a call that won (returned a success) was in flight at the same instant as a call of "
    "another task whose page range overlaps or touches its own (when no call won: any two "
    "such calls)"
)
FULL_OVERLAP_DEFINITION = "all racing calls were in flight at one instant"


def low_overlap_warning(tasks: int, rounds: int, contested: int) -> str | None:
    """The warning when few rounds were contested (None when enough were, or one task)."""
    if tasks < 2 or not rounds or contested / rounds >= LOW_OVERLAP:
        return None
    return (
        f"only {contested} of {rounds} rounds really raced (a winning call overlapped a "
        "competing one): the calls rarely overlapped, so the run says little about the race "
        "(try more rounds, another target or scheduler)"
    )


def build_summary(
    config: RunConfig,
    stats: RunStats,
    judgement: Judgement,
    *,
    target_name: str,
    describe: dict[str, Any],
    clock: str,
    replayable: bool,
) -> dict[str, Any]:
    """Everything the run found, as one JSON-able dict."""
    out = config.out
    grading: dict[str, Any] = stats.grader.to_json() if stats.grader else {}
    check = judgement.check
    warnings = []
    low = low_overlap_warning(config.tasks, stats.rounds, stats.overlapped_rounds)
    if low is not None:
        warnings.append(low)
    replay = f"mmrace replay {shlex.quote(str(out))}" if replayable else None
    return {
        "mmrace_summary": SUMMARY_VERSION,
        "verdict": judgement.verdict,
        "exit_code": judgement.exit_code,
        "reasons": list(judgement.reasons),
        "warnings": warnings,
        "target": target_name,
        "target_info": describe,
        "clock": clock,
        "workload": config.workload.name,
        "workload_ref": config.workload_ref,
        "seed": config.target.seed,
        "tasks": config.tasks,
        "rounds": stats.rounds,
        "rounds_requested": config.rounds,
        "time_budget": config.time_budget,
        "interrupted": stats.interrupted,
        "operations": stats.operations,
        "race_operations": stats.race_operations,
        "seconds": round(stats.seconds, 4),
        "throughput": round(stats.throughput, 1),
        "phase_seconds": {name: round(v, 4) for name, v in stats.phases.items()},
        "double_wins": stats.double_wins,
        "first_double_win": stats.first_double_win,
        "overlap": {
            "rounds": stats.overlapped_rounds,
            "ratio": round(stats.overlap_ratio, 4),
            "definition": OVERLAP_DEFINITION,
            "full_rounds": stats.full_overlap_rounds,
            "full_ratio": round(stats.full_overlap_ratio, 4),
            "full_definition": FULL_OVERLAP_DEFINITION,
            "warning": low,
        },
        "problems": stats.problems,
        "problem_count": stats.problem_count,
        "check": {
            "verdict": check.verdict,
            "reason": check.reason,
            "seconds": check.seconds,
            "operations": check.operations,
            "partitions": check.partitions,
            "counterexample": check.counterexample,
            "counterexample_events": check.details,
        },
        "grading": grading,
        "replay": replay,
        "files": {
            "history": "history.jsonl",
            "schedule": "schedule.jsonl" if clock == "steps" else None,
            "run": RUN_FILE,
            "summary": SUMMARY_FILE,
        },
        "run_dir": str(out),
    }


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    path = out / SUMMARY_FILE
    path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return path


def format_summary(summary: dict[str, Any]) -> str:
    """The human report: facts, verdicts, and on a violation the counterexample and replay."""
    s = summary
    unit = "steps" if s["clock"] == "steps" else "ns"
    lines = [
        f"target     {s['target']}  ({_info(s['target_info'])})",
        f"workload   {s['workload']}   tasks {s['tasks']}   seed {s['seed']}",
        f"rounds     {s['rounds']}"
        + (f" of {s['rounds_requested']}" if s["rounds_requested"] else "")
        + (f"   INCOMPLETE: {s['interrupted']}" if s["interrupted"] else ""),
        f"operations {s['operations']}  in {s['seconds']:.2f} s  ({s['throughput']:,.0f} ops/s)",
        f"overlap    {s['overlap']['rounds']}/{s['rounds']} rounds really raced "
        f"({100 * s['overlap']['ratio']:.1f}%), all calls at once in "
        f"{s['overlap'].get('full_rounds', '?')}   stamps: {unit}",
    ]
    c = s["check"]
    check_line = f"checker    {c['verdict']}"
    if c["reason"]:
        check_line += f": {c['reason']}"
    lines.append(check_line + f"   ({c['operations']} ops, {c['seconds']:.2f} s)")
    for mode in MODES:
        g = s["grading"].get(mode)
        if g is None:
            continue
        top = ", ".join(f"{o['outcome']} ×{o['count']} {o['grade']}" for o in g["outcomes"][:3])
        more = len(g["outcomes"]) - 3
        if more > 0:
            top += f", … {more} more"
        lines.append(f"grading    {mode:<6} {g['verdict']:<12} {top}")
    if s["problem_count"]:
        lines.append(f"problems   {s['problem_count']}: {s['problems'][0]}")
    mark = {OK: "OK", VIOLATION: "VIOLATION", UNKNOWN: "UNKNOWN (could not judge)"}
    lines.append(f"verdict    {mark.get(s['verdict'], s['verdict'])}")
    for reason in s["reasons"]:
        lines.append(f"           - {reason}")
    for warning in s["warnings"]:
        lines.append(f"warning    {warning}")
    if c["counterexample"]:
        lines.append("")
        lines.append("counterexample:")
        lines.extend("  " + line for line in c["counterexample"].splitlines())
    if s["verdict"] != OK and s["replay"]:
        lines.append("")
        lines.append(f"reproduce: {s['replay']}")
    lines.append(f"run dir    {s['run_dir']}")
    return "\n".join(lines)


def _info(info: dict[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in info.items() if v not in (None, "", False)]
    return ", ".join(parts) or "-"
