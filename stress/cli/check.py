"""`mmrace check HISTORY`: is a recorded history linearizable with respect to the mm spec?

Prints the verdict, the counts, and for a violation the counterexample in words: the smallest
failing part (minimized unless --no-minimize), the longest order the search could build, and why
each call that could come next cannot. Exit status: 0 OK, 1 VIOLATION, 3 UNKNOWN, 2 bad input.
"""

from __future__ import annotations

import argparse
import json

from stress.errors import UsageError

HELP = "check a history file for linearizability"


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
    if args.timeout is not None and not 0 < args.timeout < float("inf"):
        raise UsageError(f"--timeout {args.timeout}: must be a positive, finite number of seconds")
    from stress import checker
    from stress.driver import check_file

    try:
        done = check_file(args.history, args.timeout, minimize=args.minimize)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: no verdict, which is UNKNOWN (never OK)
        from stress.errors import interruption
        from stress.verdict import Verdict

        reason = f"interrupted ({interruption()}) before the check could judge"
        if args.json:
            print(json.dumps({"verdict": Verdict.UNKNOWN.value, "reason": reason}))
        else:
            print(f"{Verdict.UNKNOWN.value}: {reason}")
        return Verdict.UNKNOWN.exit_code
    if args.json:
        print(json.dumps(checker.result_json(done.model, done.result, done.original)))
    else:
        print(checker.render(done.model, done.result, done.original, done.header))
    return done.verdict.exit_code
