"""`mmrace report DIR`: write DIR/report.html (self-contained) and optionally JUnit XML."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write a self-contained HTML report for a run directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", metavar="DIR", type=Path, help="a run directory (mmrace run --out)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the HTML (default DIR/report.html)"
    )
    parser.add_argument(
        "--junit", metavar="FILE", type=Path, default=None, help="also write JUnit XML for CI"
    )


def run(args: argparse.Namespace) -> int:
    """Write the report (and JUnit XML); exit with the run's own code (stress.verdict)."""
    from stress.cli._paths import check_out_file
    from stress.report import load_run, write_junit, write_report

    view = load_run(args.run_dir)
    check_out_file(args.out or args.run_dir / "report.html", "--out")
    if args.junit is not None:
        check_out_file(args.junit, "--junit")
    path = write_report(args.run_dir, args.out, view=view)
    print(f"report: {path}")
    if args.junit is not None:
        print(f"junit: {write_junit(view, args.junit)}")
    return view.exit_code
