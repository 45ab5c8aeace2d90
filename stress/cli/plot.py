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
    else a run's plots (drawn in parallel, byte for byte as the run drew them)."""
    from typing import Any

    from stress.report import (
        MUTANTS_FILE,
        SWEEP_FILE,
        load_mutants,
        load_run,
        load_sweep,
        render_plots,
    )
    from stress.rundir import PLOTS_DIR

    run_dir: Path = args.run_dir
    out = run_dir / PLOTS_DIR
    data: Any
    if (run_dir / SWEEP_FILE).is_file():
        kind, data = "sweep", load_sweep(run_dir / SWEEP_FILE)
    elif (run_dir / MUTANTS_FILE).is_file():
        kind, data = "mutants", load_mutants(run_dir / MUTANTS_FILE)
    else:
        kind, data = "run", load_run(run_dir).run
    images = render_plots(kind, data, args.format)  # in parallel worker processes
    out.mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        path = out / f"{name}.{args.format}"
        path.write_bytes(image)
        print(path)
    return 0
