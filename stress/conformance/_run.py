"""The conformance matrix: the spec's public cases and the race workloads against one target.

Sequential cases (`workloads.spec_cases`): one target per arena the cases use (far, low, top),
opened with that arena as its space; each case runs its setup (serial), its requests (serial),
then a cleanup that unmaps the arena and any of its own mappings a runtime placed outside it.
A row compares each request's result with the spec's: strict, equal (OTHER: some other address
the model allows); compat, the same except that a MAP_FIXED_NOREPLACE probe answered with
another address counts as the failed probe it stands for (the caller undoes it), as in the
grading's compat reading. A case whose setup fails disagrees (the spec's setups succeed).

Race workloads: a short `mmrace run` of each (`stress.driver.perform`) into DIR/races/NAME;
the spec's answer is an atomic probe (OK), the target's the run's strict grading and checker
(strict) and its compat grading (compat). A run that could not judge is "could not run".

The matrix's verdict, by the one table (`stress.verdict`): a disagreement is VIOLATION (exit 1),
else a case that could not run is UNKNOWN (exit 3), else OK. A case outside what the target
protocol can express (LTP17 maps a file; ops on the wire are anonymous) is "n/a", with its
reason, and judges nothing. A wrong target or wrapper is a `UsageError` (exit 2), as for `run`;
a runtime that breaks while starting makes its rows "could not run".
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

import mm
import workloads
from stress.driver import perform
from stress.errors import CouldNotRun
from stress.harness import RunConfig, TargetOptions, make_target
from stress.report import write_conformance_report
from stress.verdict import Verdict, worst

AGREE, DISAGREE, NOT_RUN, SKIPPED = "agree", "disagree", "could not run", "n/a"
FILE = "conformance.json"
TEXT = "conformance.txt"


@attrs.frozen
class Row:
    """One case: the spec's answer, the target's, and whether they agree in each reading."""

    id: str
    kind: str  # "sequential" or "race"
    request: str
    spec: str
    target: str
    strict: str  # AGREE, DISAGREE, NOT_RUN or SKIPPED
    compat: str
    reason: str = ""

    @property
    def verdict(self) -> Verdict:
        if DISAGREE in (self.strict, self.compat):
            return Verdict.VIOLATION
        return Verdict.UNKNOWN if NOT_RUN in (self.strict, self.compat) else Verdict.OK


@attrs.frozen
class Matrix:
    """All rows, and what they ran against."""

    target: dict[str, Any]
    rows: tuple[Row, ...]

    @property
    def verdict(self) -> Verdict:
        return worst(r.verdict for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        counts = {
            mode: {
                v: sum(getattr(r, mode) == v for r in self.rows)
                for v in (AGREE, DISAGREE, NOT_RUN, SKIPPED)
            }
            for mode in ("strict", "compat")
        }
        return {
            "mmrace_conformance": 1,
            "verdict": self.verdict.value,
            "exit_code": self.verdict.exit_code,
            "target": self.target,
            "counts": counts,
            "rows": [attrs.asdict(r) for r in self.rows],
        }

    def table(self) -> str:
        """The rows as a fixed-width text table."""
        head = ("case", "spec", "target", "strict", "compat")
        body = [(r.id, r.spec, r.target, r.strict, r.compat) for r in self.rows]
        widths = [min(max(len(x[i]) for x in [head, *body]), 24 + 40 * (i == 2)) for i in range(5)]
        lines = []
        for cells in [head, *body]:
            lines.append("  ".join(_cut(c, w).ljust(w) for c, w in zip(cells, widths, strict=True)))
        return "\n".join(line.rstrip() for line in lines)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# --- sequential cases ------------------------------------------------------------------------


def _show(op: mm.Op, value: int | str | None) -> str:
    if value is None:
        return "pending"
    if value == workloads.OTHER:
        return "another address"
    return mm.format_result(op.kind, int(value))


def _judge(
    case: workloads.SpecCase, params: mm.Params, results: Sequence[int | None]
) -> tuple[str, str]:
    """(strict, compat) for a case's request results (all present)."""
    want = case.expected_results(params.privileged)
    state = mm.State.empty()
    for op in case.setup:
        _, state = mm.apply(state, params, op)
    strict = compat = True
    for op, expected, got in zip(case.ops, want, results, strict=True):
        assert got is not None
        if expected == workloads.OTHER:
            ok = got >= 0 and got != op.addr and mm.is_allowed_placement(state, params, op, got)
        else:
            ok = got == expected
        moved = mm.is_probe(op) and got >= 0 and got != op.addr
        strict = strict and ok
        compat = compat and (ok or (moved and expected == -mm.EEXIST))
        _, state = mm.apply(state, params, op)
    return (AGREE if strict else DISAGREE), (AGREE if compat else DISAGREE)


async def _run_arena(
    options: TargetOptions, arena: tuple[int, int], cases: Sequence[workloads.SpecCase]
) -> tuple[list[Row], dict[str, Any]]:
    """The sequential cases of one arena on one target."""
    lo, hi = arena
    try:
        target: Any = make_target(options)
    except CouldNotRun as exc:
        return [_not_run(c, str(exc)) for c in cases], {}
    params = target.params
    space = workloads.Space(lo, hi - lo, params.page_size, params.dac_mmap_min_addr)
    rows: list[Row] = []
    try:
        try:
            await target.open(1, space)
        except CouldNotRun as exc:
            return [_not_run(c, str(exc)) for c in cases], dict(target.describe)
        for index, case in enumerate(cases):
            rows.append(await _run_case(target, params, index, case, arena))
    finally:
        await target.aclose()
    return rows, dict(target.describe)


async def _run_case(
    target: Any,
    params: mm.Params,
    index: int,
    case: workloads.SpecCase,
    arena: tuple[int, int],
) -> Row:
    want = case.expected_results(params.privileged)
    spec = ", ".join(_show(op, v) for op, v in zip(case.ops, want, strict=True))
    setup: list[int | None] = []
    got: list[int | None] = []
    try:
        setup = [r.result for r in await target.run_serial(index, list(case.setup))]
        if len(setup) != len(case.setup) or None in setup:
            return _not_run(case, _dead(target))
        if any(r is not None and r < 0 for r in setup):
            shown = ", ".join(_show(op, r) for op, r in zip(case.setup, setup, strict=True))
            return _row(case, spec, f"setup failed: {shown}", DISAGREE, DISAGREE)
        got = [r.result for r in await target.run_serial(index, list(case.ops))]
        if len(got) != len(case.ops) or None in got:
            return _not_run(case, _dead(target))
        shown = ", ".join(_show(op, r) for op, r in zip(case.ops, got, strict=True))
        return _row(case, spec, shown, *_judge(case, params, got))
    finally:
        if getattr(target, "dead", None) is None:
            placed = [*zip(case.setup, setup, strict=False), *zip(case.ops, got, strict=False)]
            await target.run_serial(index, _undo(arena, placed, params.page_size))


def _undo(
    arena: tuple[int, int], placed: Sequence[tuple[mm.Op, int | None]], page: int
) -> list[mm.Op]:
    """Unmap the arena, and each mapping a call placed outside it (a hint, a moved probe)."""
    undo = [mm.Op.munmap(arena[0], arena[1] - arena[0])]
    for op, result in placed:
        made = mm.mapped_range(op, result, page)
        if made is not None and not (arena[0] <= made[0] and made[1] <= arena[1]):
            undo.append(mm.Op.munmap(made[0], made[1] - made[0]))
    return undo


def _dead(target: Any) -> str:
    return f"agent {getattr(target, 'dead', None) or 'gave no result'}"


def _row(case: workloads.SpecCase, spec: str, got: str, strict: str, compat: str) -> Row:
    return Row(case.id, case.kind, case.request, spec, got, strict, compat)


def _not_run(case: workloads.SpecCase, reason: str) -> Row:
    return Row(case.id, case.kind, case.request, case.expected, "-", NOT_RUN, NOT_RUN, reason)


# --- race workloads --------------------------------------------------------------------------


def _race_row(name: str, case_id: str, summary: dict[str, Any]) -> Row:
    """A race run's summary as a row: spec OK; strict = strict grading and checker, compat =
    compat grading; a run that could not judge is NOT_RUN."""
    grading = summary.get("grading") or {}
    check = (summary.get("check") or {}).get("verdict", "UNKNOWN")

    def seen(mode: str) -> tuple[str, str]:
        part = grading.get(mode) or {}
        outcomes = part.get("outcomes") or []
        top: dict[str, Any] = max(outcomes, key=lambda o: o.get("count", 0), default={})
        text = (
            f"{part.get('verdict', 'UNKNOWN')} ({top.get('outcome', '-')} {top.get('grade', '')})"
        )
        return part.get("verdict", "UNKNOWN"), text.replace(" )", ")")

    strict_v, strict_text = seen("strict")
    compat_v, compat_text = seen("compat")
    request = f"race workload {name}"
    spec = "OK: an atomic probe"
    target = f"strict {strict_text}, checker {check}; compat {compat_text}"
    if summary.get("verdict") == "UNKNOWN" and "VIOLATION" not in (strict_v, check, compat_v):
        reason = "; ".join(summary.get("reasons") or ["the run could not judge"])
        return Row(case_id, "race", request, spec, target, NOT_RUN, NOT_RUN, reason)

    def mode(*verdicts: str) -> str:
        if all(v == "OK" for v in verdicts):
            return AGREE
        return DISAGREE if "VIOLATION" in verdicts else NOT_RUN

    return Row(case_id, "race", request, spec, target, mode(strict_v, check), mode(compat_v))


def _run_race(
    options: TargetOptions, name: str, case_id: str, out: Path, tasks: int, rounds: int
) -> Row:
    workload = workloads.get(name)
    try:
        target = make_target(options)
        config = RunConfig(workload, name, options, tasks, rounds, None, out)
        summary = perform(config, target, check_timeout=60.0, handle_sigint=False)
    except CouldNotRun as exc:
        return Row(case_id, "race", f"race workload {name}", "OK: an atomic probe", "-",
                   NOT_RUN, NOT_RUN, str(exc))  # fmt: skip
    return _race_row(name, case_id, summary)


# --- the whole matrix ------------------------------------------------------------------------


def run_conformance(
    options: TargetOptions,
    out: Path,
    *,
    races: Sequence[str] | None = None,
    tasks: int = 4,
    rounds: int = 20,
    sequential: bool = True,
    on_row: Callable[[Row], None] | None = None,
    report: bool = True,
) -> Matrix:
    """Run the matrix (see the module docstring) into `out`: conformance.json and .txt, the
    page report.html (unless not `report`), and each race run in out/races/NAME. `races`:
    workload names (None: the whole catalog)."""
    out.mkdir(parents=True, exist_ok=True)
    cases = workloads.spec_cases()
    rows: list[Row] = []
    describe: dict[str, Any] = {"spec": options.spec, "wrapper": shlex.join(options.wrapper)}

    def add(row: Row) -> None:
        rows.append(row)
        if on_row is not None:
            on_row(row)

    if sequential:
        by_arena: dict[tuple[int, int], list[workloads.SpecCase]] = {}
        for case in cases:
            if case.kind == "sequential" and not case.needs:
                by_arena.setdefault(case.arena, []).append(case)
        for arena, group in by_arena.items():
            got, info = trio.run(_run_arena, options, arena, group)
            describe.setdefault("info", info)
            for row in got:
                add(row)
        for case in cases:
            if case.kind == "sequential" and case.needs:
                why = f"needs {case.needs}"
                add(
                    Row(case.id, case.kind, case.request, case.expected, "-", SKIPPED, SKIPPED, why)
                )
    spec_races = {c.workload: c.id for c in cases if c.kind == "race"}
    names = list(workloads.catalog()) if races is None else list(races)
    for name in names:
        add(
            _run_race(
                options, name, spec_races.get(name, name), out / "races" / name, tasks, rounds
            )
        )
    order = {c.id: i for i, c in enumerate(cases)}
    rows.sort(key=lambda r: (r.kind == "race", order.get(r.id, len(order))))
    matrix = Matrix(describe, tuple(rows))
    (out / FILE).write_text(json.dumps(matrix.to_json(), indent=1) + "\n", encoding="utf-8")
    (out / TEXT).write_text(matrix.table() + "\n", encoding="utf-8")
    if report:
        write_conformance_report(out, matrix.to_json())
    return matrix
