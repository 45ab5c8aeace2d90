"""jcstress-style outcome grading: each round reduces to an outcome key, graded by the workload.

A round's race calls (`RoundResult`: the round's `stress.history.Operation` records and their
role labels, built with `RoundResult.from_records`) are classified per role label into counts
(`winners`, `eexist`, `munmap_ok`, ...) plus round-wide facts (`overlapped`, `first_won`,
`disjoint`, `losers_overlap`, `privileged`, `tasks`). The key shows the non-zero counts
(``winners=1 eexist=63``); the workload's grades, predicates over those facts, decide
ACCEPTABLE / INTERESTING / FORBIDDEN. An outcome no grade describes is UNSPECIFIED (a hole in the
workload: it fails the run); a round with pending calls or harness problems is UNKNOWN.

Two readings are graded side by side. mmap(2) warns that kernels before 4.17 treat
MAP_FIXED_NOREPLACE as a hint and return a different address on a collision:
- strict: the flag must be honoured; a probe answered with another address is FORBIDDEN
  ("flag ignored: hint fallback");
- compat: such an answer is a failed probe that the caller undoes (munmaps), so it counts as
  `eexist`; does the atomic probe still hold?

Two outcomes are FORBIDDEN in both readings whatever the workload's grades say, and show in the
key: `clobbered=N` (the content oracle of the kernel and agent targets found N setup pages whose
sentinel bytes were zeroed, replaced or unmapped although no munmap or MAP_FIXED of the race
covered them) and `leftover=N` (N observer probes of the footprint check, after the cleanup,
got EEXIST: something the round mapped was still there).
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

import mm
import workloads
from stress.history import Operation
from stress.verdict import Verdict

UNSPECIFIED = "UNSPECIFIED"
UNKNOWN = "UNKNOWN"
FALLBACK = "flag ignored: hint fallback"
CLOBBERED = "clobbered"
LEFTOVER = "leftover"
HOW = {"zeroed": "was zeroed", "replaced": "lost its sentinel bytes", "unmapped": "was unmapped"}
MODES = ("strict", "compat")
_ORDER = {"winners": 0, "moved": 1, "ok": 2, "pending": 9}


@attrs.frozen
class RoundResult:
    """What grading needs of one round: its race calls with their role labels (parallel tuples;
    no labels: each op's default role), the setup ops that ran before (their ranges count as
    pre-existing mappings), problems the harness saw (-> UNKNOWN), the records of the footprint
    check (`RoundPlan.check`) and what the target's content oracle found (`content`, as in the
    round record: ``{"checked": n, "changed": [[page, "zeroed" | "replaced" | "unmapped"], ...]}``;
    None when the target has no oracle)."""

    round: int
    tasks: int
    calls: tuple[Operation, ...]
    labels: tuple[str, ...] = ()
    setup: tuple[mm.Op, ...] = ()
    problems: tuple[str, ...] = ()
    checks: tuple[Operation, ...] = ()
    content: Mapping[str, Any] | None = None

    def __attrs_post_init__(self) -> None:
        if not self.labels:
            labels = tuple(workloads.default_label(c.op) for c in self.calls)
            object.__setattr__(self, "labels", labels)
        elif len(self.labels) != len(self.calls):
            raise ValueError(f"{len(self.labels)} labels for {len(self.calls)} calls")

    @classmethod
    def from_records(
        cls,
        plan: workloads.RoundPlan,
        records: Iterable[Operation],
        *,
        round_index: int = 0,
        problems: Sequence[str] = (),
        after: Sequence[Operation] = (),
        content: Mapping[str, Any] | None = None,
    ) -> RoundResult:
        """The round's race records matched with its plan: a task's records, in call order,
        get the role labels of its planned ops; a count mismatch becomes a problem (the round
        is then UNKNOWN). `after`: the records that followed the race (undo, cleanup, footprint
        check), where the footprint check's records are found by their ops."""
        by_task: dict[int, list[Operation]] = {}
        for record in records:
            by_task.setdefault(record.task, []).append(record)
        calls: list[Operation] = []
        labels: list[str] = []
        found = list(problems)
        tasks = len(plan.tasks)
        for task in sorted(by_task):
            mine = sorted(by_task[task], key=lambda r: r.call)
            planned = plan.tasks[task] if 0 <= task < tasks else ()
            if len(mine) != len(planned):
                found.append(
                    f"task {task} ran {len(mine)} race call(s), its plan has {len(planned)}"
                )
            for k, record in enumerate(mine):
                calls.append(record)
                labels.append(
                    plan.label(task, k) if k < len(planned) else workloads.default_label(record.op)
                )
        for task in range(tasks):
            if plan.tasks[task] and task not in by_task:
                found.append(f"task {task} ran no race call, its plan has {len(plan.tasks[task])}")
        checks = _find_run(after, plan.check)
        return cls(
            round_index,
            tasks,
            tuple(calls),
            tuple(labels),
            plan.setup,
            tuple(found),
            checks,
            content,
        )


def _find_run(records: Sequence[Operation], ops: Sequence[mm.Op]) -> tuple[Operation, ...]:
    """The first run of consecutive records whose ops are `ops`, in order (empty: not found,
    e.g. an agent that died before the check ran)."""
    k = len(ops)
    if not k:
        return ()
    for i in range(len(records) - k + 1):
        if all(records[i + j].op == ops[j] for j in range(k)):
            return tuple(records[i : i + k])
    return ()


def clobbered(result: RoundResult, page_size: int) -> list[tuple[int, str]]:
    """Pages the content oracle saw change that no successful race munmap or MAP_FIXED (without
    NOREPLACE) covered: (page address, "zeroed" | "replaced" | "unmapped")."""
    if not result.content:
        return []
    replacing = [
        mm.page_range(c.op, page_size)
        for c in result.calls
        if c.result is not None
        and c.result >= 0
        and (c.op.kind == "munmap" or (mm.is_fixed(c.op) and not mm.is_probe(c.op)))
    ]
    found = []
    for item in result.content.get("changed") or ():
        addr, how = int(item[0]), str(item[1])
        if not any(lo <= addr < hi for lo, hi in replacing):
            found.append((addr, how))
    return found


def leftovers(result: RoundResult, page_size: int) -> list[tuple[int, int]]:
    """Ranges whose footprint-check probe got EEXIST: still mapped after the cleanup."""
    return [
        mm.page_range(c.op, page_size)
        for c in result.checks
        if mm.is_probe(c.op) and c.result == -mm.EEXIST
    ]


def describe_clobbered(
    result: RoundResult, pages: Sequence[tuple[int, str]], page_size: int
) -> str:
    """The clobbered outcome in words: which page, how, and what the probes over it answered."""
    addr, how = pages[0]
    over = [
        c
        for c in result.calls
        if mm.is_probe(c.op) and mm.overlaps(mm.page_range(c.op, page_size), (addr, addr + 1))
    ]
    answers = ", ".join(
        f"task {c.task}'s probe of [{lo:#x}, {hi:#x}) "
        + ("won" if c.result == c.op.addr else mm.format_result("mmap", c.result or 0))
        for c in over
        for lo, hi in [mm.page_range(c.op, page_size)]
    )
    more = f" (and {len(pages) - 1} more page(s))" if len(pages) > 1 else ""
    text = (
        f"{CLOBBERED}: the setup page at {addr:#x} {HOW.get(how, how)} during the race{more}, "
        "though no munmap or MAP_FIXED of the race covered it"
    )
    return text + (f"; NOREPLACE probes over it: {answers}" if answers else "")


def describe_leftover(ranges: Sequence[tuple[int, int]]) -> str:
    lo, hi = ranges[0]
    more = f" (and {len(ranges) - 1} more range(s))" if len(ranges) > 1 else ""
    return (
        f"{LEFTOVER}: [{lo:#x}, {hi:#x}) was still mapped after the round's cleanup{more} (the "
        "footprint check's probe got EEXIST): an munmap reported success but kept a mapping, or "
        "a call mapped more than it reported"
    )


@attrs.frozen
class RoundGrade:
    """A graded round: outcome key, verdict (ACCEPTABLE, INTERESTING, FORBIDDEN, UNSPECIFIED,
    UNKNOWN) and why."""

    key: str
    verdict: str
    description: str

    def to_json(self) -> dict[str, str]:
        return attrs.asdict(self)


def outcome(call: Operation, page_size: int, compat: bool) -> str:
    """Classify one call: winners / moved / ok / pending / lower-case errno name."""
    if call.result is None:
        return "pending"
    if call.result < 0:
        return mm.errno_name(call.result).lower()
    if call.op.kind != "mmap":
        return "ok"
    if call.result == mm.requested_address(call.op, page_size):
        return "winners"
    return "eexist" if compat and mm.is_probe(call.op) else "moved"


@attrs.frozen
class Facts:
    """The classified round: counts per (label, outcome) and the env grades are evaluated in."""

    key: str
    env: dict[str, int | bool]
    outcomes: tuple[str, ...]  # per call, parallel to RoundResult.calls
    clobbered: tuple[tuple[int, str], ...] = ()  # `clobbered` of the round
    leftovers: tuple[tuple[int, int], ...] = ()  # `leftovers` of the round


def facts(result: RoundResult, *, privileged: bool, page_size: int, compat: bool) -> Facts:
    """Reduce a round to its outcome key and the facts its grades may use."""
    outcomes = tuple(outcome(c, page_size, compat) for c in result.calls)
    counted = _counts(result.labels, outcomes)
    parts = list(counted[0])
    env = dict(counted[1])
    env.update(_flags(result, outcomes, page_size))
    env["tasks"] = result.tasks
    env["privileged"] = privileged
    pages = tuple(clobbered(result, page_size))
    left = tuple(leftovers(result, page_size))
    for name, n in ((CLOBBERED, len(pages)), (LEFTOVER, len(left))):
        if n:
            parts.append(f"{name}={n}")
    return Facts(" ".join(parts), env, outcomes, pages, left)


@functools.lru_cache(maxsize=4096)
def _counts(
    labels: tuple[str, ...], outcomes: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]]:
    """The outcome counts per role label: the key's parts and the counts' env entries (rounds
    repeat a few outcome patterns, so each is counted once)."""
    counts: Counter[tuple[str, str]] = Counter()
    calls: Counter[str] = Counter()
    for label, found in zip(labels, outcomes, strict=True):
        counts[label, found] += 1
        calls[label] += 1
    env: dict[str, int] = {}
    parts = []
    for label in sorted(calls, key=lambda lab: (lab != workloads.PROBE_LABEL, lab)):
        prefix = "" if label == workloads.PROBE_LABEL else f"{label}_"
        env[f"{prefix}calls"] = calls[label]
        mine = sorted(
            ((o, n) for (lab, o), n in counts.items() if lab == label),
            key=lambda item: (_ORDER.get(item[0], 5), item[0]),
        )
        if label == workloads.PROBE_LABEL and not counts[label, "winners"]:
            parts.append("winners=0")
        for kind, n in mine:
            env[prefix + kind] = n
            parts.append(f"{prefix}{kind}={n}")
    return tuple(parts), tuple(env.items())


def _flags(result: RoundResult, outcomes: Sequence[str], page_size: int) -> dict[str, bool]:
    pairs = list(zip(result.calls, outcomes, strict=True))
    probes = [(c, o) for c, o in pairs if mm.is_probe(c.op)]
    won = [mm.page_range(c.op, page_size) for c, o in probes if o == "winners"]
    disjoint = all(not mm.overlaps(a, b) for i, a in enumerate(won) for b in won[i + 1 :])
    mapped = [mm.page_range(op, page_size) for op in result.setup if op.kind == "mmap"]
    mapped += [
        mm.page_range(c.op, page_size) for c, o in pairs if c.op.kind == "mmap" and o == "winners"
    ]
    losers = [mm.page_range(c.op, page_size) for c, o in probes if o == "eexist"]
    losers_overlap = all(any(mm.overlaps(lost, m) for m in mapped) for lost in losers)
    first_won = True
    if probes:
        # Calls stamped at the same instant (the controlled scheduler starts a round's calls
        # together) are all "first": the winner being one of them is the unremarkable case.
        earliest = min(c.call for c, _ in probes)
        first_won = any(o == "winners" for c, o in probes if c.call == earliest)
    return {
        "overlapped": overlapped(result.calls),
        "first_won": first_won,
        "disjoint": disjoint,
        "losers_overlap": losers_overlap,
    }


def overlapped(calls: Sequence[Operation]) -> bool:
    """Did calls of two different tasks overlap in time (a pending call never ends)?"""
    forever = 1 << 63
    spans = sorted((c.call, forever if c.ret is None else c.ret, c.task) for c in calls)
    for i, (_, end, task) in enumerate(spans):
        for other_start, _, other_task in spans[i + 1 :]:
            if other_start >= end:
                break
            if other_task != task:
                return True
    return False


def grade_round(
    workload: workloads.Workload,
    result: RoundResult,
    *,
    privileged: bool,
    page_size: int = 4096,
    compat: bool = False,
) -> RoundGrade:
    """Grade one round in the strict (default) or compat reading."""
    found = facts(result, privileged=privileged, page_size=page_size, compat=compat)
    pending = "pending" in found.outcomes or any(c.result is None for c in result.checks)
    if result.problems or pending:
        reason = "; ".join(result.problems) or "a call never returned"
        return RoundGrade(found.key, UNKNOWN, f"cannot judge: {reason}")
    if found.clobbered:
        return RoundGrade(
            found.key, workloads.FORBIDDEN, describe_clobbered(result, found.clobbered, page_size)
        )
    if found.leftovers:
        return RoundGrade(found.key, workloads.FORBIDDEN, describe_leftover(found.leftovers))
    for call, kind in zip(result.calls, found.outcomes, strict=True):
        if kind == "moved" and mm.is_fixed(call.op):
            if mm.is_probe(call.op):
                return RoundGrade(found.key, workloads.FORBIDDEN, FALLBACK)
            return RoundGrade(
                found.key, workloads.FORBIDDEN, "MAP_FIXED returned a different address"
            )
    for grade in workload.grades:
        if grade.holds(found.env):
            return RoundGrade(found.key, grade.verdict, grade.description)
    return RoundGrade(
        found.key, UNSPECIFIED, f"no grade of workload {workload.name!r} describes this outcome"
    )


def _moved_probe(call: Operation, page_size: int) -> bool:
    """A probe that succeeded at another address (its `outcome` is the one the readings
    classify differently)."""
    result = call.result
    return (
        result is not None
        and result >= 0
        and call.op.kind == "mmap"
        and result != mm.requested_address(call.op, page_size)
        and mm.is_probe(call.op)
    )


def double_win(calls: Sequence[Operation], page_size: int) -> bool:
    """Did two MAP_FIXED_NOREPLACE probes with overlapping ranges both get their address?

    The atomic-probe property, cheap enough to watch live (usually one winner). Only a hint
    for progress: a racing munmap can make a second win legitimate; the checker judges."""
    won = sorted(
        mm.page_range(r.op, page_size)
        for r in calls
        if r.result is not None and mm.is_probe(r.op) and r.result == r.op.addr
    )
    return any(mm.overlaps(a, b) for a, b in itertools.pairwise(won))


_SEVERITY = {
    workloads.FORBIDDEN: 3,
    UNSPECIFIED: 2,
    UNKNOWN: 1,
    workloads.INTERESTING: 0,
    workloads.ACCEPTABLE: 0,
}


@attrs.define(eq=False)
class Grader:
    """Accumulates the outcome histogram of a run, in both readings.

    Per round: `add(result) -> (strict, compat)`. At the end: `verdict(mode)` (a `Verdict`),
    `worst(mode)` (the worst grade that decides it), `failed`, `table()` and `to_json()`.
    """

    workload: workloads.Workload
    tasks: int
    params: mm.Params = attrs.field(factory=mm.Params.reference)
    rounds: int = 0
    overlapped_rounds: int = 0
    # mode -> (key, verdict, description) -> [count, first round]
    histogram: dict[str, dict[tuple[str, str, str], list[int]]] = attrs.field(
        factory=lambda: {mode: {} for mode in MODES}
    )

    def add(self, result: RoundResult) -> tuple[RoundGrade, RoundGrade]:
        """Grade one round in both readings and count it; returns (strict, compat). The
        readings differ only where a probe succeeded at another address: otherwise the compat
        grade is the strict one, not computed twice."""
        page_size = self.params.page_size
        privileged = self.params.privileged
        strict = grade_round(self.workload, result, privileged=privileged, page_size=page_size)
        compat = strict
        if any(_moved_probe(c, page_size) for c in result.calls):
            compat = grade_round(
                self.workload, result, privileged=privileged, page_size=page_size, compat=True
            )
        grades = (strict, compat)  # in the order of MODES
        self.rounds += 1
        self.overlapped_rounds += overlapped(result.calls)
        for mode, grade in zip(MODES, grades, strict=True):
            entry = self.histogram[mode].setdefault(
                (grade.key, grade.verdict, grade.description), [0, result.round]
            )
            entry[0] += 1
        return grades[0], grades[1]

    def worst(self, mode: str = "strict") -> str:
        """The worst grade seen in `mode` that decides the verdict: FORBIDDEN > UNSPECIFIED >
        UNKNOWN, or "" when every round was ACCEPTABLE or INTERESTING."""
        worst = max((_SEVERITY[v] for _, v, _ in self.histogram[mode]), default=0)
        return {3: workloads.FORBIDDEN, 2: UNSPECIFIED, 1: UNKNOWN, 0: ""}[worst]

    def verdict(self, mode: str = "strict") -> Verdict:
        """The grades' verdict in `mode`: FORBIDDEN and UNSPECIFIED outcomes are a VIOLATION,
        a round that could not be graded makes it UNKNOWN, else OK."""
        worst = self.worst(mode)
        if worst in (workloads.FORBIDDEN, UNSPECIFIED):
            return Verdict.VIOLATION
        return Verdict.UNKNOWN if worst == UNKNOWN else Verdict.OK

    @property
    def failed(self) -> bool:
        """Does the strict reading fail the run (a FORBIDDEN or UNSPECIFIED outcome)?"""
        return self.verdict("strict") is Verdict.VIOLATION

    def rows(self, mode: str = "strict") -> list[dict[str, Any]]:
        """Histogram rows, worst grade first, then by count."""
        items = sorted(
            self.histogram[mode].items(),
            key=lambda item: (-_SEVERITY[item[0][1]], item[0][1], -item[1][0], item[0][0]),
        )
        return [
            {"outcome": k, "grade": v, "description": d, "count": n, "first_round": first}
            for (k, v, d), (n, first) in items
        ]

    def table(self) -> str:
        """A printable outcome table for the strict reading, and for compat when it differs."""
        head = (
            f"outcomes of {self.workload.name} ({self.tasks} tasks, {self.rounds} rounds, "
            f"{self.overlapped_rounds} with overlapping calls)"
        )
        lines = [head, *self._table("strict")]
        if self.histogram["compat"] == self.histogram["strict"]:
            lines.append(
                f"compat reading (hint fallback undone): same outcomes, "
                f"{self.verdict('compat').value}"
            )
        else:
            lines += ["compat reading (hint fallback counted as a failed probe):"]
            lines += self._table("compat")
        return "\n".join(lines)

    def _table(self, mode: str) -> list[str]:
        rows = self.rows(mode)
        width = max((len(r["outcome"]) for r in rows), default=7)
        lines = [f"  {'count':>8}  {'grade':<11}  {'outcome':<{width}}  description"]
        for r in rows:
            lines.append(
                f"  {r['count']:>8}  {r['grade']:<11}  {r['outcome']:<{width}}  {r['description']}"
            )
        worst = self.worst(mode)
        lines.append(
            f"  {mode} verdict: {self.verdict(mode).value}" + (f" ({worst})" if worst else "")
        )
        return lines

    def to_json(self) -> dict[str, Any]:
        """For summary.json: both readings' verdicts and histograms."""
        return {
            "workload": self.workload.name,
            "tasks": self.tasks,
            "rounds": self.rounds,
            "overlapped_rounds": self.overlapped_rounds,
            "privileged": self.params.privileged,
            **{
                mode: {
                    "verdict": self.verdict(mode).value,
                    "worst": self.worst(mode),
                    "outcomes": self.rows(mode),
                }
                for mode in MODES
            },
        }
