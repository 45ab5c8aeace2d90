"""`mmrace mutants`: run every bug variant through the workloads that can expose it, and the
correct core and the real kernel through the same budget (false-alarm check).

Exit 0 when every variant is killed and nothing correct is flagged, 1 when a variant survived
or a correct target was flagged, 3 when a cell could not run (`stress.verdict`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import mm.variants
from stress.errors import UsageError

if TYPE_CHECKING:
    from stress.selftest.mutants import CellResult, MutantsReport

HELP = "run every bug variant through the catalog; check no correct target is flagged"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget", default="60", help="total seconds (default 60)")
    parser.add_argument("--variants", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="directory for runs and JSON")
    parser.add_argument("--json", action="store_true", help="print the JSON results")
    parser.add_argument("--tasks", default="4", help="racing tasks per round (default 4)")
    parser.add_argument("--seed", default="1", help="seed of every cell (default 1)")
    parser.add_argument("--max-rounds", default="2000", help="rounds per cell at most")
    parser.add_argument("--no-false-alarm", action="store_true", help="skip the correct targets")
    parser.add_argument("--no-kernel", action="store_true", help="skip the real kernel")
    parser.add_argument("--no-plugins", action="store_true", help="skip the plug-in cells")
    parser.add_argument(
        "--list", action="store_true", help="list the variants with their origins and exit"
    )


def list_variants() -> str:
    """Every variant: name, kind, the bug, and where it comes from."""
    from mm import variants

    lines = []
    for name in variants.names():
        v = variants.get(name)
        lines += [f"{name}  ({v.kind})", f"    {v.summary}", f"    origin: {v.origin}"]
    return "\n".join(lines)


def _number(text: str, flag: str, kind: type[int] | type[float], low: float) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"{flag}: not a number: {text!r}") from None
    if value < low:
        raise UsageError(f"{flag}: must be at least {low:g}, got {text}")
    return value


def parse_variants(text: str | None) -> tuple[str, ...]:
    if text is None:
        return mm.variants.names()
    chosen = tuple(v.strip() for v in text.split(",") if v.strip())
    if not chosen:
        raise UsageError("--variants: empty list")
    unknown = [v for v in chosen if v not in mm.variants.names()]
    if unknown:
        known = ", ".join(mm.variants.names())
        raise UsageError(f"--variants: unknown variant(s) {', '.join(unknown)} (known: {known})")
    return chosen


def table(report: MutantsReport) -> str:
    from stress.selftest.mutants import STRATEGIES

    """The human-readable table: per variant, rounds to the first detection under each strategy
    (best workload; "-" none), the fastest kill and its replay; then the false-alarm check."""
    strategies = list(STRATEGIES)
    head = "".join(f"{s:>8}" for s in strategies)
    lines = [f"{'variant':<24} {'killed':<6}{head}  fastest (workload/strategy, time)"]
    by_strategy = {(r["variant"], r["strategy"]): r["detected_at"] for r in report.results()}
    for v in (*report.variants, *report.plugins):
        best = report.best(v)
        cols = "".join(f"{by_strategy.get((v, s)) or '-':>8}" for s in strategies)
        if best is None:
            lines.append(f"{v:<24} {'NO':<6}{cols}  survived {len(report.killers(v))} cells")
            continue
        fastest = f"{best.spec.workload}/{best.spec.strategy}, {best.seconds * 1000:.0f} ms"
        lines.append(f"{v:<24} {'yes':<6}{cols}  {fastest}")
        lines.append(f"    {best.how}")
        lines.append(f"    replay: {best.replay}")
    median = report.median_seconds
    killed = len(report.variants) - len([v for v in report.survivors if v in report.variants])
    lines.append(
        f"killed {killed}/{len(report.variants)}; median time to first detection "
        + (f"{median * 1000:.0f} ms" if median is not None else "n/a")
    )
    if report.plugins:
        caught = sum(report.best(p) is not None for p in report.plugins)
        pmedian = report.plugin_median_seconds
        lines.append(
            f"lock-free plug-ins caught {caught}/{len(report.plugins)} (no yield point: the "
            "controlled scheduler preempts their lines); median time to the verdict "
            + (f"{pmedian * 1000:.0f} ms" if pmedian is not None else "n/a")
        )
    checks = report.checks
    if checks:
        rounds = sum(c.rounds for c in checks)
        unknown = sum(c.unknown_rounds for c in checks)
        lines.append(
            f"false-alarm check: {len(checks)} cells (correct core, locked plug-ins, kernel), "
            f"{rounds} rounds, "
            f"{len(report.false_alarms)} flagged, {unknown} rounds unjudgeable"
        )
        for c in report.false_alarms:
            lines.append(f"  FALSE ALARM {c.spec.slug}: {c.how}  replay: {c.replay}")
    for c in report.errors:
        lines.append(f"  ERROR {c.spec.slug}: {c.error}")
    lines.append(report.verdict.value)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(list_variants())
        return 0
    budget = _number(args.budget, "--budget", float, 0.1)
    tasks = int(_number(args.tasks, "--tasks", int, 2))
    seed = int(_number(args.seed, "--seed", int, 0))
    max_rounds = int(_number(args.max_rounds, "--max-rounds", int, 1))
    chosen = parse_variants(args.variants)
    out = args.out or Path(tempfile.mkdtemp(prefix="mmrace-mutants-"))
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a directory")

    from stress.selftest.mutants import run_all

    def progress(cell: CellResult) -> None:
        if not args.json:
            mark = "killed" if cell.detected else ("ERROR" if cell.error else "-")
            print(f"  {cell.spec.slug:<48} {cell.rounds:>5} rounds  {mark}", file=sys.stderr)

    report = run_all(
        chosen,
        budget=budget,
        out=out,
        tasks=tasks,
        seed=seed,
        max_rounds=max_rounds,
        false_alarm=not args.no_false_alarm,
        kernel=not args.no_kernel and sys.platform.startswith("linux"),
        plugins=not args.no_plugins,
        on_cell=progress,
    )
    data = report.to_json()
    (out / "mutants.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    _plot(data, out)
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        print(table(report))
        print(f"results: {out / 'mutants.json'}")
    return report.verdict.exit_code


def _plot(data: dict[str, object], out: Path) -> None:
    """detection.png next to mutants.json."""
    from plots.data import MutantResult
    from plots.save import write_mutants

    rows = data["results"]
    assert isinstance(rows, list)
    results = tuple(
        MutantResult(r["variant"], r["strategy"], r["rounds"], r["detected_at"]) for r in rows
    )
    write_mutants(results, out)
