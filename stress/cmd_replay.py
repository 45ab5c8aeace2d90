"""`mmrace replay DIR`: re-run a recorded model run with its recorded schedule; compare.

Only runs of the model target under the controlled scheduler (random, pct) can be replayed:
their interleaving is a list of recorded decisions (DIR/schedule.jsonl) and their stamps are
virtual, so the replay must give the identical history. The replay goes to DIR/replay/ and is
checked and reported like a run. Exit status: the replayed run's (0 OK, 1 violation, 3 could
not judge) when the history is identical; 3 when it differs; 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

HELP = "re-run a recorded model run and compare the histories"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="a run directory written by `mmrace run`")
    parser.add_argument("--out", type=Path, default=None, help="where to replay (DIR/replay)")
    parser.add_argument("--check-timeout", type=float, default=60.0, help="checker seconds")
    parser.add_argument("--json", action="store_true", help="print the replay's summary.json")
    parser.add_argument("--no-progress", action="store_true", help="no live progress")


def _read_json(path: Path) -> Any:
    from stress.errors import UsageError

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"{path}: bad JSON: {exc}") from None


def read_schedule(path: Path) -> dict[int, list[int]]:
    """DIR/schedule.jsonl: one line per round, {"round": r, "choices": [task, ...]}."""
    from stress.errors import UsageError

    rounds: dict[int, list[int]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            rounds[int(d["round"])] = [int(c) for c in d["choices"]]
        except (ValueError, KeyError, TypeError):
            if n == len(lines):  # a killed run may leave a torn last line
                break
            raise UsageError(f"{path}:{n}: not a schedule line") from None
    return rounds


def first_difference(a: list[Any], b: list[Any]) -> int | None:
    """Index of the first differing operation (or of the shorter end), None if identical."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def run(args: argparse.Namespace) -> int:
    from stress.errors import UsageError
    from stress.harness.model import ModelTarget
    from stress.harness.progress import make_progress
    from stress.harness.runner import RunConfig
    from stress.harness.scheduler import ScheduleDiverged
    from stress.harness.session import (
        load_workload,
        options_from_run_json,
        perform,
        save_run_json,
    )
    from stress.harness.summary import RUN_FILE, format_summary
    from stress.history import load_history

    src: Path = args.dir
    if not (src / RUN_FILE).is_file():
        raise UsageError(f"{src}: not a run directory (no {RUN_FILE})")
    data = _read_json(src / RUN_FILE)
    if data.get("target") != "model" or data.get("scheduler") not in ("random", "pct"):
        raise UsageError(
            f"{src}: a {data.get('target')} run with scheduler {data.get('scheduler')} cannot be "
            "replayed (only the model target under the controlled scheduler records a schedule)"
        )
    schedule = read_schedule(src / "schedule.jsonl")
    if not schedule:
        raise UsageError(f"{src}: the schedule is empty (no round finished)")
    rounds = max(schedule) + 1
    ref = str(src / data["workload_file"]) if data.get("workload_file") else data["workload_ref"]
    workload = load_workload(ref)
    options = options_from_run_json(data)
    out: Path = args.out or (src / "replay")
    if out.resolve() == src.resolve():
        raise UsageError("--out: must differ from the run directory")
    if out.exists():
        shutil.rmtree(out)
    space = None
    if data.get("space"):
        import workloads

        space = workloads.Space(**data["space"])
    config = RunConfig(workload, ref, options, data["tasks"], rounds, None, out, space)
    target = ModelTarget(options, replay=schedule)
    save_run_json(config)
    print(f"mmrace replay: {rounds} rounds of {src} -> {out}", file=sys.stderr, flush=True)
    progress = make_progress(not args.no_progress, rounds, None)
    try:
        summary = perform(config, target, check_timeout=args.check_timeout, progress=progress)
    except ScheduleDiverged as exc:
        print(f"mmrace replay: not reproduced: the schedule diverged: {exc}")
        return 3
    _, original = load_history(src / "history.jsonl")
    _, replayed = load_history(out / "history.jsonl")
    at = first_difference(original, replayed)
    if args.json:
        summary["replay_of"] = str(src)
        summary["identical"] = at is None
        summary["first_difference"] = at
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    if at is None:
        print(f"history: identical to the original ({len(original)} operations)")
        return int(summary["exit_code"])
    if at == len(original) and len(replayed) > len(original):
        print(
            f"history: identical for the original's {len(original)} operations "
            f"(the original stops early: killed?); the replay has {len(replayed)}"
        )
        return int(summary["exit_code"])
    print(f"history: DIFFERS at operation {at}:")
    print(f"  original: {original[at] if at < len(original) else '(end)'}")
    print(f"  replay:   {replayed[at] if at < len(replayed) else '(end)'}")
    return 3
