"""`mmrace list`: the workload catalog (and any TOML workload files given), one line each;
`--verbose` adds each workload's paragraph and grades, `--json` prints everything as JSON."""

from __future__ import annotations

import argparse
import json
import textwrap
from typing import Any

import attrs

import mm
import workloads
from stress.errors import UsageError

HELP = "list the workload catalog"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="*",
        metavar="FILE.toml",
        help="also validate and list these user workload files",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show each workload's paragraph and grades"
    )
    parser.add_argument("--json", action="store_true", help="print the workloads as JSON")


def _load(files: list[str]) -> list[workloads.Workload]:
    found = list(workloads.catalog().values())
    for path in files:
        try:
            found.append(workloads.load_toml(path))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return found


def describe(workload: workloads.Workload) -> dict[str, Any]:
    """A JSON-able description: name, summary, and the full declarative definition."""
    definition = attrs.asdict(workload)
    for group in ("setup", "race", "cleanup"):
        for template in definition[group] or ():
            template["prot"] = mm.format_prot(template["prot"])
            template["flags"] = mm.format_flags(template["flags"])
    return {
        "name": workload.name,
        "short": workload.short,
        "summary": workload.summary,
        "default": workload.name == workloads.DEFAULT,
        "definition": definition,
    }


def run(args: argparse.Namespace) -> int:
    found = _load(args.files)
    if args.json:
        print(json.dumps([describe(w) for w in found], indent=2))
        return 0
    width = max(len(w.name) for w in found)
    for w in found:
        mark = " (default)" if w.name == workloads.DEFAULT else ""
        if not args.verbose:
            print(f"{w.name:<{width}}  {w.short}{mark}")
            continue
        print(f"{w.name}{mark}")
        print(textwrap.fill(w.summary, 96, initial_indent="  ", subsequent_indent="  "))
        if w.boundary is not None:
            spans = ", ".join(workloads.format_span(s) for s in w.boundary.spans)
            at = " or ".join(str(a) for a in w.boundary.at)
            print(f"  boundary: {spans} (cycled); page {at} of the footprint on it")
        if not w.footprint_check:
            print("  footprint check: off")
        for grade in w.grades:
            print(f"    {grade.verdict:<11}  {grade.when}")
            print(f"    {'':<11}  -> {grade.description}")
        print()
    return 0
