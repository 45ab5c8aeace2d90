"""`mmrace check HISTORY`: is a recorded history linearizable with respect to the mm spec?

Prints the verdict, the counts, and for a violation the counterexample in words: the smallest
failing part (minimized unless --no-minimize), the longest order the search could build, and why
each call that could come next cannot. Exit status: 0 OK, 1 VIOLATION, 3 UNKNOWN, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import mm
from stress.checker import CheckResult, Event, Verdict
from stress.checker.mm_check import check_events, minimized
from stress.checker.mm_model import MmModel, params_of, to_events
from stress.checker.mm_text import render
from stress.errors import UsageError
from stress.history import read_history

HELP = "check a history file for linearizability"
EXIT = {Verdict.OK: 0, Verdict.VIOLATION: 1, Verdict.UNKNOWN: 3}


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
