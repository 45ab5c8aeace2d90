"""`mmrace bench [harness|checker|all]`: measured speed next to each figure's target.

`harness` is the harness's own (`stress.selftest.bench_harness`, plus the kernel target's
figures from `stress.selftest.bench_kernel`); `checker` runs the benchmarks registered in
`stress.selftest.bench_checker` and `stress.selftest.bench_race`, imported only when asked for;
`stream` (`stress.selftest.bench_stream`, only when named) the tail after a long race, `mmrace
check` on a synthetic history of --ops operations, and the live first-violation latency.
Exit status: 0 when every figure met its target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from stress.verdict import Verdict

HELP = "measure speed: checker, harness, stream"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=("harness", "checker", "stream", "all"),
        help="which",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=300.0,
        help="stream: race time of the tail runs (default 300)",
    )
    parser.add_argument(
        "--ops",
        type=int,
        default=50_000_000,
        help="stream: operations of the synthetic history (default 50M)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="repetitions (median; default 5 for harness, 3 for checker)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke test)")
    parser.add_argument("--no-kernel", action="store_true", help="skip the kernel target")


def _rows(figures: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": f.name,
            "value": f.value,
            "unit": f.unit,
            "target": f.target,
            "ok": f.ok,
            "note": f.note,
            "skipped": f.skipped,
        }
        for f in figures
    ]


def _checker(repeat: int) -> list[dict[str, Any]]:
    from stress.selftest import bench_checker, bench_race  # bench_race registers its figures

    del bench_race
    return _rows(bench_checker.run(None, repeat=repeat))


def _format(section: str, rows: list[dict[str, Any]]) -> str:
    lines = [f"== {section}"]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"  skip {r['name']}")
            lines.append(f"         {r['note']}")
            continue
        value = f"{r['value']:,.3f}".rstrip("0").rstrip(".") + f" {r['unit']}".rstrip()
        target = "" if r["target"] is None else f"target {r['target']:,g} {r['unit']}"
        mark = "ok  " if r["ok"] else "MISS"
        lines.append(f"  {mark} {r['name']}: {value}   {target}")
        if r["note"]:
            lines.append(f"         {r['note']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from stress.errors import UsageError

    if args.repeat is not None and args.repeat < 1:
        raise UsageError(f"--repeat: must be at least 1, got {args.repeat}")
    sections: dict[str, list[dict[str, Any]]] = {}
    if args.what in ("harness", "all"):
        from stress.selftest import bench_harness

        figures = bench_harness.run(args.repeat or 5, quick=args.quick, kernel=not args.no_kernel)
        sections["harness"] = _rows(figures)
    if args.what in ("checker", "all"):
        sections["checker"] = _checker(args.repeat or 3)
    if args.what == "stream":  # long by design (two races of --seconds): only when named
        from stress.selftest import bench_stream

        if not args.seconds > 0 or args.ops < 1:
            raise UsageError("--seconds and --ops: must be positive")
        figures = bench_stream.run(args.seconds, args.ops, kernel=not args.no_kernel)
        sections["stream"] = _rows(figures)
    if args.json:
        print(json.dumps(sections, indent=2))
    else:
        print("\n".join(_format(name, rows) for name, rows in sections.items()))
    met = all(r["ok"] for rows in sections.values() for r in rows)
    return (Verdict.OK if met else Verdict.VIOLATION).exit_code  # a missed target fails
