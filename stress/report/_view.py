"""A judged run directory as the report sees it: `RunView`, built from DIR/summary.json alone.

The summary holds the verdicts, the graded outcome histograms and the race's aggregates (wins,
latency samples, a sample round, the counterexample): the report and plots draw those and never
read the history, re-plan a workload or re-judge a round. DIR/run.json adds how the run was
configured. Everything malformed is a `stress.errors.UsageError` naming the file and problem.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from plots.data import (
    Latencies,
    LatencyOverTime,
    LockWaits,
    OutcomeRow,
    RunData,
    Timeline,
    TimelineCall,
)
from stress.errors import UsageError
from stress.report._files import field, read_json
from stress.report._text import exploration_line, plain
from stress.rundir import RUN_FILE, SUMMARY_FILE
from stress.verdict import Verdict, worst


@attrs.frozen
class Check:
    """One judged property of a run (linearizability, grading strict, ...).

    ``verdict`` is OK, VIOLATION or UNKNOWN (the run could not judge: timeout, interference, a
    crashed agent); ``caveat`` marks an OK with a warning (e.g. the calls rarely overlapped:
    JUnit shows it as skipped); ``message`` says why in one line.
    """

    name: str
    verdict: Verdict
    message: str = ""
    seconds: float = 0.0
    caveat: bool = False

    @property
    def label(self) -> str:
        """What the page shows: the verdict, or WARN for an OK with a caveat."""
        return "WARN" if self.caveat and self.verdict is Verdict.OK else self.verdict.value


@attrs.frozen
class RunView:
    """A run directory as the report, JUnit writer and `mmrace plot` see it.

    ``facts`` are (label, value) rows for the header (workload, target, seed, ...);
    ``counterexample`` is the checker's counterexample as a timeline (None when there is none)
    and ``replay`` the command that re-runs the run; ``overall`` is the run's own verdict.
    """

    name: str
    run: RunData
    facts: tuple[tuple[str, str], ...]
    checks: tuple[Check, ...]
    problems: tuple[str, ...] = ()
    counterexample: Timeline | None = None
    replay: str | None = None
    rerun: str | None = None
    host: tuple[tuple[str, str], ...] = ()
    compat_outcomes: tuple[OutcomeRow, ...] = ()  # when the compat reading differs
    overall: Verdict | None = None

    @property
    def verdict(self) -> Verdict:
        """The run's own verdict; without one, the worst check's (UNKNOWN with no check)."""
        if self.overall is not None:
            return self.overall
        if not self.checks:
            return Verdict.UNKNOWN
        return worst(c.verdict for c in self.checks)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code


def load_run(run_dir: Path) -> RunView:
    """Read a judged run directory; a UsageError when it is missing or malformed."""
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
    info = summary.get("target_info") or {}
    info = info if isinstance(info, dict) else {}
    scheduler = info.get("scheduler") or (
        config.get("scheduler") if target.startswith("model") else None
    )
    check = field(summary, "check", dict, where)
    cex = _counterexample(check.get("counterexample_events"), clock, where)
    strict, compat = _outcomes(summary, where)
    overlap = summary.get("overlap") or {}
    race = summary.get("race") or {}
    if not isinstance(race, dict):
        raise UsageError(f"{where}: 'race' must be an object")
    run = RunData(
        title=f"{workload} on {target}, {tasks} tasks, {rounds} rounds",
        target=target,
        tasks=tasks,
        rounds=rounds,
        wins=_ints(race.get("wins"), tasks),
        latencies=_latencies(race.get("latency"), clock),
        lock_waits=LockWaits(_ints(race.get("lock_waits")), measured=False, clock=clock)
        if target.startswith("model")
        else None,
        outcomes=strict,
        timeline=cex if cex is not None else _sample_round(race.get("sample_round"), clock),
        overlap_ratio=overlap.get("ratio"),
        scheduler=scheduler if isinstance(scheduler, str) else None,
        probes=int(race.get("probes") or 0),
        lost=int(race.get("lost") or 0),
        in_flight=_pairs(race.get("in_flight")),
        winner_rank=_pairs(race.get("winner_rank")),
        latency_time=_over_time(race.get("latency_over_time"), clock),
        engine=str(info["engine"]) if info.get("engine") else None,
    )
    return RunView(
        name=run_dir.resolve().name,
        run=run,
        facts=_facts(summary, config),
        checks=_checks(summary, where),
        problems=tuple(str(p) for p in summary.get("problems") or ()),
        counterexample=cex,
        replay=summary.get("replay"),
        rerun=summary.get("rerun") if isinstance(summary.get("rerun"), str) else None,
        host=_host(summary.get("host")),
        compat_outcomes=compat if compat != strict else (),
        overall=Verdict.parse(summary.get("verdict")),
    )


def _ints(values: Any, size: int | None = None) -> tuple[int, ...]:
    got = tuple(int(v) for v in values) if isinstance(values, list) else ()
    if size is not None and len(got) != size:
        got = (got + (0,) * size)[:size]
    return got


def _pairs(values: Any) -> tuple[tuple[int, int], ...]:
    if not isinstance(values, list):
        return ()
    return tuple((int(v[0]), int(v[1])) for v in values if isinstance(v, list) and len(v) == 2)


def _over_time(data: Any, clock: str) -> LatencyOverTime | None:
    if not isinstance(data, dict) or not data.get("bins"):
        return None
    bins = tuple(
        (int(b["first_round"]), int(b["calls"]), float(b["mean"]), int(b["max"]))
        for b in data["bins"]
        if isinstance(b, dict)
    )
    return LatencyOverTime(int(data.get("bin_rounds") or 1), bins, clock)


def _host(data: Any) -> tuple[tuple[str, str], ...]:
    """The run's host in words (summary.json "host"; absent in older summaries)."""
    if not isinstance(data, dict):
        return ()
    rows = [
        ("kernel", str(data.get("kernel", ""))),
        ("page size", _bytes(data.get("page_size"))),
        ("mmap_min_addr", _hex(data.get("mmap_min_addr"))),
        ("LSM mmap_min_addr", _hex(data.get("lsm_mmap_min_addr"))),
        (
            "privilege",
            ""
            if data.get("privileged") is None
            else "CAP_SYS_RAWIO held"
            if data["privileged"]
            else "unprivileged (no CAP_SYS_RAWIO)",
        ),
    ]
    return tuple((k, v) for k, v in rows if v)


def _hex(value: Any) -> str:
    return f"{value:#x}" if isinstance(value, int) and not isinstance(value, bool) else ""


def _bytes(value: Any) -> str:
    return f"{value} bytes" if isinstance(value, int) and not isinstance(value, bool) else ""


def _latencies(data: Any, clock: str) -> Latencies:
    data = data if isinstance(data, dict) else {}
    return Latencies(
        _ints(data.get("won")), _ints(data.get("EEXIST")), _ints(data.get("other")), clock
    )


def _sample_round(data: Any, clock: str) -> Timeline | None:
    if not isinstance(data, dict):
        return None
    calls = tuple(
        TimelineCall(
            int(c["task"]),
            str(c.get("label", "")),
            int(c["call"]),
            None if c.get("ret") is None else int(c["ret"]),
            outcome=str(c.get("outcome", "")),
        )
        for c in data.get("calls") or ()
        if isinstance(c, dict)
    )
    return Timeline(str(data.get("title", "a racing round")), calls, clock)


_OP_TEXT = re.compile(r"^(\w+)\((0x[0-9a-f]+|\d+), (0x[0-9a-f]+|\d+)")


def short_op(text: str) -> str:
    """``mmap(0x1000, 0x2000, PROT_READ, ...)`` -> ``mmap 0x1000+0x2000`` (else unchanged)."""
    m = _OP_TEXT.match(text)
    return f"{m.group(1)} {m.group(2)}+{m.group(3)}" if m else text


def format_result(kind: str, result: int | None) -> str:
    """A raw result in words: an address in hex, 0, an errno name, or "pending"."""
    if result is None:
        return "pending"
    if result < 0:
        return errno.errorcode.get(-result, str(result))
    return f"{result:#x}" if kind == "mmap" else str(result)


def counterexample_timeline(
    events: Sequence[dict[str, Any]],
    linearized: Sequence[int],
    stuck: Sequence[tuple[int, str]],
    title: str,
    clock: str,
) -> Timeline:
    """The checker's counterexample (summary.json's events) as a timeline: ``linearized``
    indexes ``events`` in linearization order, ``stuck`` gives (index, reason) for the calls
    that could not come next."""
    order = {index: pos + 1 for pos, index in enumerate(linearized)}
    reasons = dict(stuck)
    calls = []
    for i, ev in enumerate(events):
        text = str(ev.get("op", "?"))
        ret = ev.get("ret")
        result = format_result(text.split("(", 1)[0], ev.get("result") if ret is not None else None)
        calls.append(
            TimelineCall(
                task=int(ev["task"]),
                label=f"{short_op(text)} → {result}",
                call=int(ev["call"]),
                ret=None if ret is None else int(ret),
                order=order.get(i),
                conflict=i in reasons,
                reason=reasons.get(i, ""),
            )
        )
    return Timeline(title, tuple(calls), clock)


def _counterexample(data: Any, clock: str, where: str) -> Timeline | None:
    if not data:
        return None
    at = f"{where}: check.counterexample_events"
    events = field(data, "events", list, at)
    for e in events:
        field(e, "task", int, at)
        field(e, "call", int, at)
    linearized = field(data, "linearized", list, at)
    stuck = [(field(s, "event", int, at), str(s.get("why", ""))) for s in data.get("stuck", [])]
    n = len(linearized)
    title = (
        f"Counterexample: {n} call{'' if n == 1 else 's'} linearized, then stuck on {len(stuck)}"
    )
    return counterexample_timeline(events, linearized, stuck, title, clock)


def _rows(mode: Any) -> tuple[OutcomeRow, ...]:
    rows = []
    for o in (mode or {}).get("outcomes", []):
        if not isinstance(o, dict):
            continue
        rows.append(
            OutcomeRow(
                str(o.get("outcome", "?")),
                int(o.get("count", 0)),
                str(o.get("grade", "")),
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
    """The reading's own verdict, with the count of rounds behind it."""
    mode = mode if isinstance(mode, dict) else {}
    if not mode:
        return Check(name, Verdict.UNKNOWN, "no grading recorded")
    verdict = Verdict.parse(mode.get("verdict"))
    rows = _rows(mode)
    if verdict is Verdict.VIOLATION:
        forbidden = [o for o in mode.get("outcomes", []) if o.get("grade") == "FORBIDDEN"]
        if forbidden:
            n = sum(int(o.get("count", 0)) for o in forbidden)
            first = min(int(o.get("first_round", 0)) for o in forbidden)
            return Check(name, verdict, f"{n} round(s) FORBIDDEN (first: round {first})")
        unspecified = sum(r.count for r in rows if r.grade == "UNSPECIFIED")
        return Check(name, verdict, f"{unspecified} round(s) match no grade of the workload")
    if verdict is Verdict.OK:
        interesting = sum(r.count for r in rows if r.grade == "INTERESTING")
        note = f", {interesting} round(s) INTERESTING" if interesting else ""
        return Check(name, verdict, f"no forbidden outcome{note}")
    unknown = sum(r.count for r in rows if r.grade == "UNKNOWN")
    return Check(name, verdict, f"could not grade {unknown} round(s)")


def _checks(summary: dict[str, Any], where: str) -> tuple[Check, ...]:
    check = field(summary, "check", dict, where)
    verdict = Verdict.parse(check.get("verdict"))
    reason = str(check.get("reason") or "")
    seconds = float(check.get("seconds") or 0.0)
    lin = Check(
        "linearizability",
        verdict,
        reason or ("some atomic order explains every result" if verdict is Verdict.OK else ""),
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
        first = problems[0] if problems else "?"
        checks.append(Check("interference", Verdict.UNKNOWN, f"{count} problem(s), first: {first}"))
    else:
        checks.append(Check("interference", Verdict.OK, "no harness problems"))
    checks.append(_overlap_check(summary))
    if summary.get("interrupted"):
        checks.append(
            Check("complete", Verdict.UNKNOWN, f"run incomplete: {summary['interrupted']}")
        )
    return tuple(checks)


def _overlap_check(summary: dict[str, Any]) -> Check:
    """OK, with the run's own low-overlap warning as a caveat (a race that hardly raced says
    little, it is not wrong)."""
    overlap = summary.get("overlap") or {}
    raced, rounds = overlap.get("rounds", 0), summary.get("rounds", 0)
    if summary.get("tasks", 0) < 2:
        return Check("race overlap", Verdict.OK, "one task: nothing to overlap")
    if overlap.get("warning"):
        return Check("race overlap", Verdict.OK, str(overlap["warning"]), caveat=True)
    full = overlap.get("full_rounds")
    also = "" if full is None else f"; all calls at once in {full}"
    return Check("race overlap", Verdict.OK, f"{raced}/{rounds} rounds really raced{also}")


def _facts(summary: dict[str, Any], config: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    s = summary
    overlap = s.get("overlap") or {}
    info = s.get("target_info") or {}
    rows = [
        ("workload", str(s.get("workload_ref") or s.get("workload"))),
        ("target", str(s.get("target"))),
        ("target details", _details(info)),
        ("scheduler", _scheduler(s, config)),
        ("tasks", str(s.get("tasks"))),
        ("rounds", str(s.get("rounds"))),
        ("seed", str(s.get("seed"))),
        ("operations", f"{s.get('operations')} ({s.get('race_operations')} racing)"),
        ("time", f"{s.get('seconds')} s ({s.get('throughput')} ops/s)"),
        ("overlap", f"{overlap.get('rounds')}/{s.get('rounds')} rounds really raced"),
        ("full overlap", _full_overlap(overlap, s.get("rounds"))),
        ("clock", str(s.get("clock"))),
        ("exploration", exploration_line(s.get("exploration"))),
    ]
    return tuple((k, v) for k, v in rows if v not in ("", "None"))


def _details(info: dict[str, Any]) -> str:
    """target_info without the entries shown elsewhere (scheduler, clock) and the empty ones."""
    return ", ".join(
        f"{k}={plain(v)}"
        for k, v in info.items()
        if v not in (None, "", [], {}) and k not in ("scheduler", "clock")
    )


def _scheduler(summary: dict[str, Any], config: dict[str, Any]) -> str:
    """The scheduler that chose the interleavings: only targets that have one (the model and
    plug-ins say so in target_info); the kernel and agent targets race free OS threads."""
    info = summary.get("target_info") or {}
    chosen = info.get("scheduler") if isinstance(info, dict) else None
    if chosen:
        return str(chosen)
    if str(summary.get("target", "")).startswith("model"):
        return str(config.get("scheduler", ""))
    return ""


def _full_overlap(overlap: dict[str, Any], rounds: Any) -> str:
    full = overlap.get("full_rounds")
    return "" if full is None else f"{full}/{rounds} rounds with every racing call at once"
