"""A run directory (`mmrace run --out DIR`) as a `plots.data.RunView`.

Reads DIR/summary.json (schema in docs/harness.md), DIR/run.json (how the run was configured)
and streams DIR/history.jsonl (docs/history-format.md). Each round is recorded as setup, race,
cleanup; the race is found from the round record's `setup` and `race` counts (written since
the harness records them), else by re-planning the round with the run's workload (exact), or,
when the workload cannot be loaded, from the timing of task 0's serial calls.
Everything malformed is a `stress.errors.UsageError` naming the file and the problem.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from plots import derive
from plots.data import (
    FAIL,
    PASS,
    UNKNOWN,
    WARN,
    Check,
    OutcomeRow,
    RunData,
    RunView,
    Timeline,
)
from plots.load import field, read_json
from stress.errors import UsageError
from stress.grading import overlapped

SUMMARY_FILE = "summary.json"
RUN_FILE = "run.json"
HISTORY_FILE = "history.jsonl"
_STATUS = {"OK": PASS, "VIOLATION": FAIL}

Splitter = Callable[[int, Sequence[Any]], list[Any]]


def load_run(run_dir: Path) -> RunView:
    """Read a run directory; a UsageError when it is missing or its files are malformed."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run directory")
    summary_path = run_dir / SUMMARY_FILE
    summary = read_json(summary_path)
    where = str(summary_path)
    if not isinstance(summary, dict) or "mmrace_summary" not in summary:
        raise UsageError(f"{where}: not an mmrace summary (no 'mmrace_summary' key)")
    config = read_json(run_dir / RUN_FILE) if (run_dir / RUN_FILE).is_file() else {}
    if not isinstance(config, dict):
        raise UsageError(f"{run_dir / RUN_FILE}: expected a JSON object")
    target = field(summary, "target", str, where)
    workload = field(summary, "workload", str, where)
    tasks = field(summary, "tasks", int, where)
    rounds = field(summary, "rounds", int, where)
    clock = field(summary, "clock", str, where)
    scheduler = config.get("scheduler") if target.startswith("model") else None
    stats = _scan_history(run_dir, summary, config, tasks, clock)
    check = field(summary, "check", dict, where)
    cex = _counterexample(check.get("counterexample_events"), clock, where)
    strict, compat = _outcomes(summary, where)
    overlap = summary.get("overlap") or {}
    run = RunData(
        title=f"{workload} on {target}, {tasks} tasks, {rounds} rounds",
        target=target,
        tasks=tasks,
        rounds=rounds,
        wins=stats.wins,
        latencies=derive.latencies(stats.race, clock),
        lock_waits=derive.estimated_lock_waits(stats.race, clock)
        if target.startswith("model")
        else None,
        outcomes=strict,
        timeline=cex if cex is not None else stats.sample,
        overlap_ratio=overlap.get("ratio"),
        scheduler=scheduler if isinstance(scheduler, str) else None,
        probes=stats.probes,
        lost=stats.lost,
    )
    return RunView(
        name=run_dir.resolve().name,
        run=run,
        facts=_facts(summary, config),
        checks=_checks(summary, where),
        problems=tuple(str(p) for p in summary.get("problems") or ()),
        counterexample=cex,
        replay=summary.get("replay"),
        compat_outcomes=compat if compat != strict else (),
        overall=_STATUS.get(str(summary.get("verdict")), UNKNOWN),
    )


class _Scan:
    def __init__(self, tasks: int) -> None:
        self.race: list[Any] = []
        self.wins: tuple[int, ...] = (0,) * tasks
        self.probes = 0
        self.lost = 0
        self.sample: Timeline | None = None


def _scan_history(
    run_dir: Path, summary: dict[str, Any], config: dict[str, Any], tasks: int, clock: str
) -> _Scan:
    """Stream the history: keep the racing calls, count wins and probes, pick a sample round."""
    from stress.history import read_history

    header, reader = read_history(run_dir / HISTORY_FILE)
    planned: list[Splitter] = []  # built on first need: most histories carry the counts

    def split(round_index: int, ops: list[Any]) -> list[Any]:
        record = reader.rounds.pop(round_index, None) or {}
        setup, race = record.get("setup"), record.get("race")
        if type(setup) is int and type(race) is int and min(setup, race) >= 0:
            return derive.race_of_round(ops, setup, race)
        if not planned:
            planned.append(_splitter(run_dir, header, config, tasks))
        return planned[0](round_index, ops)

    scan = _Scan(tasks)
    wins = [0] * tasks
    fallback: Timeline | None = None

    def finish(round_index: int, ops: list[Any]) -> None:
        nonlocal fallback
        race = split(round_index, ops)
        scan.race.extend(race)
        for task, n in enumerate(derive.wins_per_task(race, tasks)):
            wins[task] += n
        for op in race:
            if derive.is_probe(op):
                scan.probes += 1
                scan.lost += op.result == -17
        title = f"Round {round_index}: racing calls"
        if scan.sample is None and race and overlapped(race):
            scan.sample = derive.round_timeline(
                race, title + " (first round that overlapped)", clock
            )
        if fallback is None and race:
            fallback = derive.round_timeline(race, title, clock)

    current: list[Any] = []
    current_round = -1
    for op in reader:
        if op.round != current_round and current:
            finish(current_round, current)
            current = []
        current_round = op.round
        current.append(op)
    if current:
        finish(current_round, current)
    scan.wins = tuple(wins)
    if scan.sample is None:
        scan.sample = fallback
    return scan


def _splitter(run_dir: Path, header: Any, config: dict[str, Any], tasks: int) -> Splitter:
    """Re-plan rounds with the run's workload to split setup/race/cleanup exactly."""
    workload = None
    ref = config.get("workload_file") or config.get("workload_ref") or header.workload
    try:
        import workloads

        path = run_dir / str(ref)
        workload = workloads.load_toml(str(path)) if path.is_file() else workloads.get(str(ref))
        params = header.params or {}
        arena = header.arena or {}
        space = workloads.Space(
            base=arena.get("base", 0x100000000000),
            size=arena.get("size", 1 << 30),
            page_size=params.get("page_size", 4096),
            min_addr=params.get("dac_mmap_min_addr", 4096),
        )
        seed = header.seed or 0
    except (ImportError, ValueError, TypeError, OSError):
        workload = None
    if workload is None:
        return lambda _r, ops: derive.race_of_round(ops)

    def split(round_index: int, ops: Sequence[Any]) -> list[Any]:
        try:
            plan = workload.plan(round_index, tasks, space, seed)
        except (ValueError, TypeError):
            return derive.race_of_round(ops)
        return derive.race_of_round(ops, len(plan.setup), sum(len(t) for t in plan.tasks))

    return split


def _counterexample(data: Any, clock: str, where: str) -> Timeline | None:
    if not data:
        return None
    at = f"{where}: check.counterexample_events"
    events = field(data, "events", list, at)
    linearized = field(data, "linearized", list, at)
    stuck = [(field(s, "event", int, at), str(s.get("why", ""))) for s in data.get("stuck", [])]

    class _Event:
        def __init__(self, e: Any) -> None:
            self.task = field(e, "task", int, at)
            self.call = field(e, "call", int, at)
            self.ret = e.get("ret")
            self.input = str(e.get("op", "?"))
            self.output = e.get("result")

    evs = [_Event(e) for e in events]

    def label(ev: Any) -> str:
        kind = ev.input.split("(", 1)[0]
        result = derive.format_result(kind, ev.output if ev.ret is not None else None)
        return f"{derive.short_op(ev.input)} → {result}"

    title = f"Counterexample: {len(linearized)} calls linearized, then stuck on {len(stuck)}"
    return derive.counterexample_timeline(evs, linearized, stuck, title, clock, label)


def _get(d: dict[str, Any], *keys: str, default: Any = None) -> Any:
    """The first of ``keys`` present in ``d`` (the summary's names changed once)."""
    for key in keys:
        if key in d:
            return d[key]
    return default


def _rows(mode: Any) -> tuple[OutcomeRow, ...]:
    rows = []
    for o in (mode or {}).get("outcomes", []):
        if not isinstance(o, dict):
            continue
        rows.append(
            OutcomeRow(
                str(_get(o, "outcome", "key", default="?")),
                int(_get(o, "count", "rounds", default=0)),
                str(_get(o, "grade", "verdict", default="")),
                str(o.get("description", "")),
            )
        )
    return tuple(rows)


def _outcomes(summary: dict[str, Any], where: str) -> tuple[tuple[OutcomeRow, ...], ...]:
    grading = summary.get("grading") or {}
    if not isinstance(grading, dict):
        raise UsageError(f"{where}: 'grading' must be an object")
    return _rows(grading.get("strict")), _rows(grading.get("compat"))


def _grading_check(name: str, mode: Any) -> Check:
    """FAIL on a FORBIDDEN or UNSPECIFIED round (a hole in the workload fails a run, as in
    `stress.harness.verdict.judge`); UNKNOWN when some round could not be graded."""
    mode = mode if isinstance(mode, dict) else {}
    verdict = str(mode.get("verdict", "UNKNOWN"))
    rows = _rows(mode)
    forbidden = [r for r in rows if r.grade == "FORBIDDEN"]
    if verdict == "FORBIDDEN" or forbidden:
        n = sum(r.count for r in forbidden)
        firsts = [
            o.get("first_round")
            for o in mode.get("outcomes", [])
            if isinstance(o, dict) and _get(o, "grade", "verdict") == "FORBIDDEN"
        ]
        first = min((f for f in firsts if isinstance(f, int)), default=None)
        where = "" if first is None else f" (first: round {first})"
        return Check(name, FAIL, f"{n} round(s) FORBIDDEN{where}")
    if verdict in ("OK", "ACCEPTABLE", "INTERESTING"):
        interesting = sum(r.count for r in rows if r.grade == "INTERESTING")
        note = f", {interesting} round(s) INTERESTING" if interesting else ""
        return Check(name, PASS, f"no forbidden outcome{note}")
    unspecified = sum(r.count for r in rows if r.grade == "UNSPECIFIED")
    if verdict == "UNSPECIFIED" or unspecified:
        return Check(name, FAIL, f"{unspecified} round(s) match no grade of the workload")
    if not mode:
        return Check(name, UNKNOWN, "no grading recorded")
    return Check(name, UNKNOWN, f"could not grade every round ({verdict})")


def _checks(summary: dict[str, Any], where: str) -> tuple[Check, ...]:
    check = field(summary, "check", dict, where)
    verdict = str(check.get("verdict", "UNKNOWN"))
    reason = str(check.get("reason") or "")
    seconds = float(check.get("seconds") or 0.0)
    lin = Check(
        "linearizability",
        _STATUS.get(verdict, UNKNOWN),
        reason or ("some atomic order explains every result" if verdict == "OK" else verdict),
        seconds,
    )
    grading = summary.get("grading") or {}
    checks = [
        lin,
        _grading_check("grading strict", grading.get("strict")),
        _grading_check("grading compat", grading.get("compat")),
    ]
    problems = summary.get("problems") or []
    count = summary.get("problem_count") or len(problems)
    if count:
        checks.append(Check("interference", UNKNOWN, f"{count} problem(s), first: {problems[0]}"))
    else:
        checks.append(Check("interference", PASS, "no harness problems"))
    checks.append(_overlap_check(summary))
    if summary.get("interrupted"):
        checks.append(Check("complete", UNKNOWN, f"run incomplete: {summary['interrupted']}"))
    return tuple(checks)


def _overlap_check(summary: dict[str, Any]) -> Check:
    """PASS, or WARN with the run's own low-overlap warning (never FAIL: the verdict stays the
    run's; a race that hardly raced says little, it is not wrong)."""
    overlap = summary.get("overlap") or {}
    raced, rounds = overlap.get("rounds", 0), summary.get("rounds", 0)
    if summary.get("tasks", 0) < 2:
        return Check("race overlap", PASS, "one task: nothing to overlap")
    if "warning" in overlap:  # summaries that carry the run's own judgement
        if overlap["warning"]:
            return Check("race overlap", WARN, str(overlap["warning"]))
    elif not raced:
        return Check("race overlap", WARN, "no round's calls overlapped: no race")
    full = overlap.get("full_rounds")
    also = "" if full is None else f"; all calls at once in {full}"
    return Check("race overlap", PASS, f"{raced}/{rounds} rounds really raced{also}")


def _facts(summary: dict[str, Any], config: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    s = summary
    overlap = s.get("overlap") or {}
    info = s.get("target_info") or {}
    rows = [
        ("workload", str(s.get("workload_ref") or s.get("workload"))),
        ("target", str(s.get("target"))),
        ("target details", ", ".join(f"{k}={v}" for k, v in info.items() if v not in (None, ""))),
        ("scheduler", str(config.get("scheduler", ""))),
        ("tasks", str(s.get("tasks"))),
        ("rounds", str(s.get("rounds"))),
        ("seed", str(s.get("seed"))),
        ("operations", f"{s.get('operations')} ({s.get('race_operations')} racing)"),
        ("time", f"{s.get('seconds')} s ({s.get('throughput')} ops/s)"),
        ("overlap", f"{overlap.get('rounds')}/{s.get('rounds')} rounds really raced"),
        ("full overlap", _full_overlap(overlap, s.get("rounds"))),
        ("clock", str(s.get("clock"))),
    ]
    return tuple((k, v) for k, v in rows if v not in ("", "None"))


def _full_overlap(overlap: dict[str, Any], rounds: Any) -> str:
    full = overlap.get("full_rounds")
    return "" if full is None else f"{full}/{rounds} rounds with every racing call at once"
