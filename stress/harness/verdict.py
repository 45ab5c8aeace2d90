"""After the rounds: check the history, combine with grading and problems into one verdict.

The overall verdict is VIOLATION when the checker found no atomic order or a round was graded
FORBIDDEN (strict reading); else UNKNOWN when anything kept the run from judging (checker
timeout or absence, harness problems, an interrupted run, ungradable rounds); else OK.
Exit codes: 0 OK, 1 VIOLATION, 3 UNKNOWN (2 is the CLI's bad usage).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import attrs

from stress import grading
from stress.harness.runner import RunStats
from stress.history import Header, Operation, load_history

OK, VIOLATION, UNKNOWN = "OK", "VIOLATION", "UNKNOWN"
EXIT_CODES = {OK: 0, VIOLATION: 1, UNKNOWN: 3}


@attrs.frozen
class CheckSummary:
    """The checker's answer in plain values (JSON-able)."""

    verdict: str
    reason: str
    seconds: float
    operations: int
    partitions: int
    counterexample: str | None = None
    details: dict[str, Any] | None = None


@attrs.frozen
class Judgement:
    verdict: str
    reasons: tuple[str, ...]
    check: CheckSummary

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


def check_history_file(path: Path, timeout: float) -> CheckSummary:
    """Run the linearizability checker on a history file (UNKNOWN when it cannot judge)."""
    header, ops = load_history(path)
    return check_operations(header, ops, timeout)


def check_operations(header: Header, ops: list[Operation], timeout: float) -> CheckSummary:
    """Check the history; a violation's counterexample is minimized by the engine's sound steps
    (within the same time budget) and put in words, as `mmrace check` does."""
    try:
        from stress.checker.mm_check import minimized
        from stress.checker.mm_model import MmModel, check_history, params_of
        from stress.checker.mm_text import counterexample_lines
    except ModuleNotFoundError as exc:
        return CheckSummary(UNKNOWN, f"the mm checker is missing ({exc})", 0, 0, 0)
    started = time.monotonic()
    try:
        result = check_history(header, ops, timeout)
        text = details = None
        if result.counterexample is not None:
            model = MmModel(params_of(header))
            original = len(result.counterexample.events)
            left = max(0.5, timeout - (time.monotonic() - started))
            result = minimized(model, result, left)
            cx = result.counterexample
            assert cx is not None  # minimized() keeps a counterexample
            text = "\n".join(counterexample_lines(model, cx, original)).strip("\n")
            details = counterexample_json(cx, original)
    except Exception as exc:  # a broken checker must not pass a run: UNKNOWN, with the reason
        return CheckSummary(UNKNOWN, f"checker failed: {type(exc).__name__}: {exc}", 0, 0, 0)
    verdict = getattr(result.verdict, "value", str(result.verdict))
    return CheckSummary(
        verdict,
        result.reason,
        round(result.seconds, 3),
        result.operations,
        result.partitions,
        text,
        details,
    )


def counterexample_json(cx: Any, minimized_from: int | None = None) -> dict[str, Any]:
    """The counterexample as indices into its events, with the events themselves."""
    events = []
    for e in cx.events:
        op = e.input
        item = {"task": e.task, "call": e.call, "ret": e.ret, "result": e.output, "op": str(op)}
        events.append(item)
    return {
        "events": events,
        "linearized": list(cx.linearized),
        "stuck": [{"event": i, "why": why} for i, why in cx.stuck],
        "minimized_from": minimized_from,
    }


def judge(stats: RunStats, check: CheckSummary) -> Judgement:
    """Combine the checker, the grades and the run's problems into the run's verdict."""
    violations, unknowns = [], []
    if check.verdict == VIOLATION:
        violations.append(f"linearizability: {check.reason or 'no atomic order explains it'}")
    elif check.verdict != OK:
        unknowns.append(f"checker could not judge: {check.reason}")
    rows = stats.grader.rows("strict") if stats.grader else []
    counts = {grade: 0 for grade in ("FORBIDDEN", grading.UNSPECIFIED, grading.UNKNOWN)}
    for row in rows:
        if row["grade"] in counts:
            counts[row["grade"]] += row["count"]
    if counts["FORBIDDEN"]:
        first = min(r["first_round"] for r in rows if r["grade"] == "FORBIDDEN")
        violations.append(
            f"grading: {counts['FORBIDDEN']} round(s) FORBIDDEN (first: round {first})"
        )
    if counts[grading.UNSPECIFIED]:
        violations.append(
            f"grading: {counts[grading.UNSPECIFIED]} round(s) match no grade of the workload"
        )
    if counts[grading.UNKNOWN]:
        unknowns.append(f"grading: {counts[grading.UNKNOWN]} round(s) could not be judged")
    if stats.problem_count:
        unknowns.append(f"{stats.problem_count} harness problem(s), first: {stats.problems[0]}")
    if stats.interrupted:
        unknowns.append(f"run incomplete: {stats.interrupted}")
    if stats.rounds == 0:
        unknowns.append("no round ran")
    if violations:
        return Judgement(VIOLATION, tuple(violations + unknowns), check)
    if unknowns:
        return Judgement(UNKNOWN, tuple(unknowns), check)
    return Judgement(OK, (), check)
