"""`mmrace check HISTORY`: is a recorded history linearizable with respect to the mm spec?

Prints the verdict, the counts, and for a violation the counterexample in words: the smallest
failing part (minimized unless --no-minimize), the longest order the search could build, and why
each call that could come next cannot. Exit status: 0 OK, 1 VIOLATION, 3 UNKNOWN, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import attrs

import mm
from stress.checker import CheckResult, Counterexample, Event, Verdict, check, minimize
from stress.checker.mm_check import check_events
from stress.checker.mm_model import MmModel, params_of, to_events
from stress.errors import UsageError
from stress.history import read_history

HELP = "check a history file for linearizability"
EXIT = {Verdict.OK: 0, Verdict.VIOLATION: 1, Verdict.UNKNOWN: 3}
MINIMIZE_SECONDS = 20.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("history", help="a history file (JSON Lines, docs/history-format.md)")
    parser.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="time budget of the check"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--minimize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="shrink a counterexample before printing it (default: yes)",
    )


def run(args: argparse.Namespace) -> int:
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError(f"--timeout {args.timeout}: must be a positive number of seconds")
    header, reader = read_history(args.history)
    params = params_of(header)
    events, rounds = to_events(reader)
    result = check_events(params, events, rounds, timeout=args.timeout)
    model = MmModel(params)
    original = None
    if result.counterexample is not None and args.minimize:
        original = len(result.counterexample.events)
        result = minimized(model, result, args.timeout)
    if args.json:
        print(json.dumps(to_json(model, result, original)))
    else:
        print(render(model, result, original, header))
    return EXIT[result.verdict]


def minimized(model: MmModel, result: CheckResult, timeout: float | None) -> CheckResult:
    """The result with its counterexample shrunk (the original one if shrinking fails)."""
    assert result.counterexample is not None
    budget = MINIMIZE_SECONDS if timeout is None else min(MINIMIZE_SECONDS, timeout)
    deadline = time.monotonic() + budget
    smaller = minimize(model, result.counterexample.events, timeout=budget)
    left = max(0.1, deadline - time.monotonic())
    again = check(model, smaller, timeout=left, workers=1)
    if again.verdict is not Verdict.VIOLATION or again.counterexample is None:
        return result
    return attrs.evolve(result, counterexample=again.counterexample)


def _time(ns: int | None, origin: int) -> str:
    if ns is None:
        return "no response"
    delta = ns - origin
    return f"{delta} ns" if delta < 10_000 else f"{delta / 1000:.1f} µs"


def render(model: MmModel, result: CheckResult, original: int | None, header: Any = None) -> str:
    """The verdict and counterexample in words."""
    lines = [f"{result.verdict.value}: {result.reason}"]
    if header is not None:
        lines.append(f"history: target {header.target}, workload {header.workload or '-'}")
    lines.append(
        f"operations: {result.operations}, partitions: {result.partitions} "
        f"({result.partitions_checked} checked), seconds: {result.seconds:.3f}"
    )
    cx = result.counterexample
    if cx is not None:
        lines.extend(counterexample_lines(model, cx, original))
    return "\n".join(lines)


def counterexample_lines(model: MmModel, cx: Counterexample, original: int | None) -> list[str]:
    """The counterexample: its calls, the longest order found, and why each next call fails."""
    events = cx.events
    origin = min(e.call for e in events)
    size = f"{len(events)} operations"
    if original is not None and original != len(events):
        size += f", minimized from {original}"
    lines = ["", f"counterexample ({size}; times from its first call):"]
    order = sorted(range(len(events)), key=lambda k: (events[k].call, k))
    for k in order:
        e = events[k]
        lines.append(
            f"  [{k}] task {e.task}: {model.describe_operation(e)}   "
            f"({_time(e.call, origin)} .. {_time(e.ret, origin)})"
        )
    if cx.linearized:
        lines.append("longest order that explains a prefix:")
        for n, k in enumerate(cx.linearized, 1):
            lines.append(
                f"  {n}. [{k}] task {events[k].task}: {model.describe_operation(events[k])}"
            )
        lines.append("then no call can come next:")
    else:
        lines.append("no call can come first:")
    for k, why in cx.stuck:
        lines.append(f"  - [{k}] {why}")
    return lines


def _event_json(model: MmModel, k: int, e: Event) -> dict[str, Any]:
    op: mm.Op = e.input
    return {
        "index": k,
        "task": e.task,
        "kind": op.kind,
        "addr": op.addr,
        "length": op.length,
        "prot": op.prot,
        "flags": op.flags,
        "result": None if e.ret is None else e.output,
        "call": e.call,
        "ret": e.ret,
        "text": model.describe_operation(e),
    }


def to_json(model: MmModel, result: CheckResult, original: int | None) -> dict[str, Any]:
    """The result as one JSON-ready object."""
    cx = result.counterexample
    out: dict[str, Any] = {
        "verdict": result.verdict.value,
        "reason": result.reason,
        "operations": result.operations,
        "partitions": result.partitions,
        "partitions_checked": result.partitions_checked,
        "seconds": result.seconds,
        "counterexample": None,
    }
    if cx is not None:
        out["counterexample"] = {
            "events": [_event_json(model, k, e) for k, e in enumerate(cx.events)],
            "linearized": list(cx.linearized),
            "stuck": [{"index": k, "reason": why} for k, why in cx.stuck],
            "minimized_from": original,
        }
    return out
