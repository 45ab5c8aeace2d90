"""`mmrace sweep WORKLOAD --tasks 1,2,4,...`: one run per task count, then the scaling plots.

Each size is a normal run directory DIR/tasks-N (history, summary, report; with `--repeats K`,
K of them: DIR/tasks-N-rI); DIR/sweep.json collects one point per size (the repeats added up,
with each repeat's latency percentiles), DIR/plots/ gets throughput.png, contention.png and
latency-percentiles.png, and DIR/sweep.html shows them with a table of the sizes.
Exit status as for `mmrace run`: 0 all OK, 1 any violation, 3 any run could not judge.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

HELP = "run a workload at several task counts and plot scaling"
DEFAULT_TASKS = "1,2,4,8,16,32,64"
DEFAULT_ROUNDS = 100
SCHEDULERS = ("random", "pct", "trio")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workload", help="catalog name (see `mmrace list`) or a .toml file")
    parser.add_argument("--target", default="model", help="model (default), kernel, agent, ...")
    parser.add_argument(
        "--tasks", default=DEFAULT_TASKS, help=f"task counts, comma-separated ({DEFAULT_TASKS})"
    )
    parser.add_argument(
        "--rounds", default=str(DEFAULT_ROUNDS), help=f"rounds per size ({DEFAULT_ROUNDS})"
    )
    parser.add_argument("--seed", default=None, help="seed (default: random, printed)")
    parser.add_argument(
        "--scheduler", default="random", help="model target: random (default), pct or trio"
    )
    parser.add_argument("--check-timeout", default="60", help="seconds per check (default 60)")
    parser.add_argument(
        "--repeats", default="1", help="runs per task count (default 1; seeds seed, seed+1, ...)"
    )
    parser.add_argument("--no-reports", action="store_true", help="no report.html per size")
    parser.add_argument("--out", type=Path, required=True, help="sweep directory")


def parse_tasks(text: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4]: positive, distinct integers; else a UsageError."""
    from stress.errors import UsageError

    sizes: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise UsageError(f"--tasks: {part!r} is not a positive integer")
        if int(part) in sizes:
            raise UsageError(f"--tasks: {part} is given twice")
        sizes.append(int(part))
    return sizes


def _positive(flag: str, text: str, kind: type) -> Any:
    from stress.errors import UsageError

    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not a {kind.__name__}") from None
    if not value > 0:
        raise UsageError(f"{flag}: must be positive, got {text}")
    return value


def run_size(
    args: argparse.Namespace, tasks: int, rounds: int, seed: int, out: Path
) -> tuple[dict[str, Any], Any]:
    """One run of the sweep through the harness library; returns (summary, SweepPoint)."""
    from plots.data import SweepPoint
    from stress.driver import load_workload, perform, save_run_json
    from stress.errors import UsageError
    from stress.harness import RunConfig, TargetOptions, make_target
    from stress.report import load_run, write_report

    workload = load_workload(args.workload)
    options = TargetOptions(spec=args.target, seed=seed, scheduler=args.scheduler)
    try:
        target = make_target(options)
    except ValueError as exc:
        raise UsageError(f"--target {args.target}: {exc}") from None
    config = RunConfig(workload, args.workload, options, tasks, rounds, None, out)
    save_run_json(config)
    summary = perform(config, target, check_timeout=float(args.check_timeout), progress=None)
    view = load_run(out)
    if not args.no_reports:
        write_report(out, view=view)
    point = SweepPoint(
        tasks=tasks,
        rounds=int(summary["rounds"]),
        operations=int(summary["race_operations"]),
        seconds=float(summary["seconds"]),
        overlap_ratio=float(summary["overlap"]["ratio"]),
        probes=view.run.probes,
        lost=view.run.lost,
        verdict=str(summary["verdict"]),
        latency_percentiles=_percentiles(view.run.latencies),
        clock=view.run.latencies.clock,
    )
    return summary, point


def _percentiles(latencies: Any) -> tuple[tuple[float, float, float], ...]:
    """(p50, p90, p99) of all racing calls' latencies (nearest rank), () when none."""
    from plots.race import percentile

    values = sorted(float(v) for sample in latencies.by_class().values() for v in sample)
    if not values:
        return ()
    return ((percentile(values, 50), percentile(values, 90), percentile(values, 99)),)


def combine(points: list[Any]) -> Any:
    """The repeats of one size as one point: counts and times added, the overlap ratio
    weighted by rounds, the worst verdict, every repeat's percentiles kept."""
    import attrs

    from stress.verdict import Verdict, worst

    rounds = sum(p.rounds for p in points)
    return attrs.evolve(
        points[0],
        rounds=rounds,
        operations=sum(p.operations for p in points),
        seconds=sum(p.seconds for p in points),
        overlap_ratio=sum(p.overlap_ratio * p.rounds for p in points) / rounds if rounds else 0.0,
        probes=sum(p.probes for p in points),
        lost=sum(p.lost for p in points),
        verdict=worst(Verdict.parse(p.verdict) for p in points).value,
        latency_percentiles=tuple(v for p in points for v in p.latency_percentiles),
        repeats=len(points),
    )


def run(args: argparse.Namespace) -> int:
    """Run every size, print one progress line each, save sweep.json and the plots."""
    from plots.data import SweepData
    from stress.errors import UsageError
    from stress.report import SWEEP_FILE, sweep_to_json, write_sweep_report
    from stress.verdict import Verdict, worst

    sizes = parse_tasks(args.tasks)
    rounds = _positive("--rounds", args.rounds, int)
    repeats = _positive("--repeats", args.repeats, int)
    _positive("--check-timeout", args.check_timeout, float)
    if args.scheduler not in SCHEDULERS:
        raise UsageError(f"--scheduler: unknown scheduler {args.scheduler!r}")
    if args.scheduler != "random" and args.target != "model":
        raise UsageError("--scheduler: only the model target has a controlled scheduler")
    seed = _positive("--seed", args.seed, int) if args.seed is not None and args.seed != "0" else 0
    if args.seed is None:
        seed = random.SystemRandom().randrange(1 << 32)
    out: Path = args.out
    if (out / SWEEP_FILE).exists():
        raise UsageError(f"--out {out}: already holds a sweep (choose another directory)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a directory")
    print(
        f"mmrace sweep: {args.workload} on {args.target}, tasks {sizes}, {rounds} rounds each, "
        f"seed {seed} -> {out}",
        file=sys.stderr,
        flush=True,
    )
    points = []
    verdicts = []
    dirs = {}
    runs: dict[int, list[str]] = {}
    for tasks in sizes:
        done = []
        for k in range(repeats):
            name = f"tasks-{tasks}" if repeats == 1 else f"tasks-{tasks}-r{k + 1}"
            _summary, one = run_size(args, tasks, rounds, seed + k, out / name)
            done.append(one)
            runs.setdefault(tasks, []).append(name)
        point = combine(done)
        points.append(point)
        verdicts.append(point.verdict)
        dirs[tasks] = runs[tasks][0]
        again = f" ({repeats} repeats)" if repeats > 1 else ""
        print(
            f"  tasks {tasks:>4}: {point.rounds} rounds{again}, {point.operations} racing calls in "
            f"{point.seconds:.2f} s ({point.throughput:,.0f} calls/s), overlap "
            f"{100 * point.overlap_ratio:.0f}%, probes lost {100 * point.lost_share:.0f}%, "
            f"{point.verdict}",
            file=sys.stderr,
            flush=True,
        )
    workload_name = args.workload
    sweep = SweepData(workload_name, args.target, seed, tuple(points))
    data = sweep_to_json(sweep)
    for p in data["points"]:
        p["run_dir"] = dirs[p["tasks"]]
        p["run_dirs"] = runs[p["tasks"]]
    (out / SWEEP_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    for path in write_sweep_report(out, sweep, runs):
        print(path)
    return worst(Verdict.parse(v) for v in verdicts).exit_code
