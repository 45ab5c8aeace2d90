"""`mmrace replay DIR`: re-run a recorded run with its recorded schedule; compare.

Runs of the model target and of plug-ins under the controlled scheduler (random, pct,
exhaustive) can be replayed: their interleaving is a list of recorded decisions
(DIR/schedule.jsonl) and their stamps are virtual, so the replay must give the identical
history. The replay goes to DIR/replay/ and is
checked and reported like a run. Exit status: the replayed run's (0 OK, 1 violation, 3 could
not judge) when the history is identical; 3 when it differs; 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stress.verdict import EXIT_CODES, Verdict

HELP = "re-run a recorded (controlled) run and compare the histories"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="a run directory written by `mmrace run`")
    parser.add_argument("--out", type=Path, default=None, help="where to replay (DIR/replay)")
    parser.add_argument("--check-timeout", type=float, default=60.0, help="checker seconds")
    parser.add_argument("--json", action="store_true", help="print the replay's summary.json")
    parser.add_argument("--no-progress", action="store_true", help="no live progress")


def run(args: argparse.Namespace) -> int:
    from stress.cli._progress import make_progress
    from stress.driver import replay, replay_config, schedule_truncated
    from stress.errors import counted
    from stress.report import format_summary

    src: Path = args.dir
    if not 0 < args.check_timeout < float("inf"):
        from stress.errors import UsageError

        raise UsageError(
            f"--check-timeout {args.check_timeout}: must be a positive, finite number of seconds"
        )
    config, schedule, plans = replay_config(src, args.out)
    truncated = schedule_truncated(src, schedule)
    if truncated is not None:
        print(f"mmrace replay: {truncated}: only those can be replayed", file=sys.stderr)
    print(
        f"mmrace replay: {counted(config.rounds or 0, 'round')} of {src} -> {config.out}",
        file=sys.stderr,
        flush=True,
    )
    progress = make_progress(not args.no_progress, config.rounds, None)
    done = replay(
        config, schedule, src, check_timeout=args.check_timeout, progress=progress, plans=plans
    )
    if done.diverged is not None:
        print(f"mmrace replay: not reproduced: the schedule diverged: {done.diverged}")
        return EXIT_CODES[Verdict.UNKNOWN]
    summary, original, replayed, at = (
        done.summary,
        done.original,
        done.replayed,
        done.first_difference,
    )
    if args.json:
        summary["replay_of"] = str(src)
        summary["identical"] = at is None
        summary["first_difference"] = at
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    if at is None:
        print(f"history: identical to the original ({counted(len(original), 'operation')})")
        return int(summary["exit_code"])
    if at == len(original) and len(replayed) > len(original):
        print(
            f"history: identical for the original's {len(original)} operations "
            f"(the original stops early: killed?); the replay has {len(replayed)}"
        )
        return int(summary["exit_code"])
    if truncated is not None and at == len(replayed) < len(original):
        print(
            f"history: identical for the replay's {len(replayed)} operations; the original's "
            f"other {len(original) - len(replayed)} are not replayable ({truncated})"
        )
        return EXIT_CODES[Verdict.UNKNOWN]
    print(f"history: DIFFERS at operation {at}:")
    print(f"  original: {original[at] if at < len(original) else '(end)'}")
    print(f"  replay:   {replayed[at] if at < len(replayed) else '(end)'}")
    return EXIT_CODES[Verdict.UNKNOWN]
