"""`mmrace plot DIR`: redraw the plots of an existing run (or sweep) without running it again."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "redraw the plots of an existing run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", metavar="DIR", type=Path, help="a run, sweep or mutants directory"
    )
    parser.add_argument(
        "--format", choices=("png", "svg"), default="png", help="image format (default png)"
    )


def run(args: argparse.Namespace) -> int:
    """Write DIR/plots/*.<format>: a sweep's (DIR/sweep.json), mutants' (DIR/mutants.json), or
    else a run's plots."""
    from plots import save
    from stress.report import MUTANTS_FILE, SWEEP_FILE, load_mutants, load_run, load_sweep
    from stress.rundir import PLOTS_DIR

    run_dir: Path = args.run_dir
    out = run_dir / PLOTS_DIR
    if (run_dir / SWEEP_FILE).is_file():
        paths = save.write_sweep(load_sweep(run_dir / SWEEP_FILE), out, args.format)
    elif (run_dir / MUTANTS_FILE).is_file():
        paths = save.write_mutants(load_mutants(run_dir / MUTANTS_FILE), out, args.format)
    else:
        paths = save.write_run(load_run(run_dir).run, out, args.format)
    for path in paths:
        print(path)
    return 0
