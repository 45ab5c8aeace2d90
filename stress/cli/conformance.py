"""`mmrace conformance [--target T] [--wrapper CMD]`: the spec's public cases and the race
workloads against a target, one row per case (the spec's answer, the target's, agree or not,
strict and compat); DIR/conformance.json, conformance.txt and report.html, each race run in
DIR/races/NAME.
Exit status by the one verdict table: 0 all agree, 1 a disagreement, 3 a case could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from stress.cli._agent import add_agent_arguments, agent_options

HELP = "run the spec's public cases and the race workloads against a target: a conformance matrix"
DEFAULT_ROUNDS = 20
DEFAULT_TASKS = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="kernel", help="kernel (default), agent, model, ...")
    add_agent_arguments(parser)
    parser.add_argument(
        "--races",
        default=None,
        help="race workloads, comma-separated (default: the whole catalog; 'none' for none)",
    )
    parser.add_argument("--no-cases", action="store_true", help="skip the sequential cases")
    parser.add_argument(
        "--tasks", default=str(DEFAULT_TASKS), help=f"tasks per race ({DEFAULT_TASKS})"
    )
    parser.add_argument(
        "--rounds", default=str(DEFAULT_ROUNDS), help=f"rounds per race ({DEFAULT_ROUNDS})"
    )
    parser.add_argument("--seed", default="1", help="seed of the race runs (default 1)")
    parser.add_argument(
        "--out", type=Path, default=None, help="directory (default mmrace-runs/...)"
    )
    parser.add_argument("--json", action="store_true", help="print conformance.json")
    parser.add_argument("--no-report", action="store_true", help="no report.html")


def _count(flag: str, text: str) -> int:
    from stress.errors import UsageError

    if not text.strip().isdigit() or int(text) < 1:
        raise UsageError(f"{flag}: {text!r} is not a positive integer")
    return int(text)


def run(args: argparse.Namespace) -> int:
    import workloads
    from stress.conformance import FILE, run_conformance
    from stress.errors import UsageError
    from stress.harness import TargetOptions

    races: list[str] | None = None
    if args.races is not None:
        races = [n.strip() for n in args.races.split(",") if n.strip() and n.strip() != "none"]
        known = workloads.catalog()
        for name in races:
            if name not in known:
                raise UsageError(f"--races: {name!r} is not a catalog workload (see `mmrace list`)")
    tasks, rounds = _count("--tasks", args.tasks), _count("--rounds", args.rounds)
    if not args.seed.isdigit():
        raise UsageError(f"--seed: {args.seed!r} is not a non-negative integer")
    options = TargetOptions(spec=args.target, seed=int(args.seed), **agent_options(args))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or Path("mmrace-runs") / f"{stamp}-conformance-{args.target}"
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a directory")
    if (out / FILE).exists():
        raise UsageError(f"--out {out}: already holds a conformance matrix")

    def show(row: object) -> None:
        print(f"  {row.id}: {row.strict}/{row.compat}", file=sys.stderr, flush=True)  # type: ignore[attr-defined]

    matrix = run_conformance(
        options, out, races=races, tasks=tasks, rounds=rounds, sequential=not args.no_cases,
        on_row=None if args.json else show, report=not args.no_report,
    )  # fmt: skip
    if args.json:
        print(json.dumps(matrix.to_json(), indent=1))
    else:
        print(matrix.table())
        data = matrix.to_json()
        counts = ", ".join(
            f"{mode} {c['agree']} agree, {c['disagree']} disagree, {c['could not run']} not run, "
            f"{c['n/a']} n/a"
            for mode, c in data["counts"].items()
        )
        print(f"\nverdict  {matrix.verdict.value}   ({counts})")
        print(f"matrix   {out / FILE}")
    return matrix.verdict.exit_code
