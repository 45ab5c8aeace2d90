"""Outcome grading on hand-made rounds: keys, grades, the strict and compat readings, ungraded and
unjudgeable outcomes, the record adapter, and the Grader's histogram, table and JSON."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import attrs
import pytest

import mm
import workloads
from stress.grading import (
    FALLBACK,
    UNKNOWN,
    UNSPECIFIED,
    Grader,
    RoundResult,
    grade_round,
    overlapped,
)
from stress.harness import undo_moved
from stress.history import Operation
from stress.verdict import Verdict

P = 4096
B = 0x100000000000
EEXIST, EINVAL, EPERM = -mm.EEXIST, -mm.EINVAL, -mm.EPERM
SAME_PAGE = workloads.get("same-page")


def probe(
    task: int, result: int | None, call: int, ret: int | None, addr: int = B, pages: int = 1
) -> Operation:
    op = mm.Op.mmap(addr, pages * P, mm.PROT_READ, mm.NR)
    return Operation(task, op, result, call, ret)


def sequential(results: list[int | None], addr: int = B) -> RoundResult:
    """Task i calls at 10*i and returns at 10*i+5: no overlap, task 0 first."""
    calls = [probe(i, r, 10 * i, 10 * i + 5, addr) for i, r in enumerate(results)]
    return RoundResult(0, len(results), tuple(calls))


def test_same_page_one_winner_is_acceptable_with_its_key() -> None:
    grade = grade_round(SAME_PAGE, sequential([B, EEXIST, EEXIST, EEXIST]), privileged=True)
    assert (grade.key, grade.verdict) == ("winners=1 eexist=3", workloads.ACCEPTABLE)


def test_winner_that_was_not_first_to_call_is_interesting() -> None:
    calls = (probe(0, EEXIST, 0, 50), probe(1, B, 10, 20), probe(2, EEXIST, 30, 40))
    result = RoundResult(0, 3, calls)
    grade = grade_round(SAME_PAGE, result, privileged=True)
    assert grade.verdict == workloads.INTERESTING
    assert "not the first" in grade.description


def test_winner_among_calls_stamped_at_the_same_instant_counts_as_first() -> None:
    # The controlled scheduler stamps a round's calls at one instant: no task called first.
    calls = (probe(0, EEXIST, 0, 50), probe(1, B, 0, 20), probe(2, EEXIST, 0, 40))
    grade = grade_round(SAME_PAGE, RoundResult(0, 3, calls), privileged=True)
    assert grade.verdict == workloads.ACCEPTABLE


def test_two_winners_are_forbidden_and_fail_the_run() -> None:
    grader = Grader(SAME_PAGE, 3)
    strict, compat = grader.add(sequential([B, B, EEXIST]))
    assert strict.key == "winners=2 eexist=1"
    assert strict.verdict == compat.verdict == workloads.FORBIDDEN
    assert grader.failed and grader.worst() == workloads.FORBIDDEN
    assert grader.verdict() is Verdict.VIOLATION


def test_an_outcome_no_grade_describes_is_unspecified_and_fails() -> None:
    grader = Grader(SAME_PAGE, 3)
    grader.add(sequential([B, EEXIST, EEXIST]))
    strict, _ = grader.add(sequential([B, EEXIST, EINVAL]))
    assert strict.key == "winners=1 eexist=1 einval=1"
    assert strict.verdict == UNSPECIFIED and "same-page" in strict.description
    assert grader.failed and grader.worst() == UNSPECIFIED
    assert grader.verdict() is Verdict.VIOLATION


def test_pending_call_or_harness_problem_is_unknown_not_ok() -> None:
    grader = Grader(SAME_PAGE, 3)
    strict, _ = grader.add(sequential([B, EEXIST, None]))
    assert strict.verdict == UNKNOWN and "never returned" in strict.description
    assert "pending=1" in strict.key
    bad = attrs.evolve(sequential([B, EEXIST, EEXIST]), problems=("interference at 0x1000",))
    assert grade_round(SAME_PAGE, bad, privileged=True).verdict == UNKNOWN
    assert not grader.failed and grader.worst() == UNKNOWN
    assert grader.verdict() is Verdict.UNKNOWN


def test_hint_fallback_strict_violation_compat_acceptable() -> None:
    """An old kernel treats NOREPLACE as a hint: the losers get other addresses."""
    elsewhere = 0x7F0000000000
    result = sequential([B, elsewhere, elsewhere - P])
    strict = grade_round(SAME_PAGE, result, privileged=True)
    compat = grade_round(SAME_PAGE, result, privileged=True, compat=True)
    assert (strict.verdict, strict.description) == (workloads.FORBIDDEN, FALLBACK)
    assert strict.key == "winners=1 moved=2"
    assert (compat.key, compat.verdict) == ("winners=1 eexist=2", workloads.ACCEPTABLE)
    assert undo_moved(result.calls, P) == [
        mm.Op.munmap(elsewhere, P),
        mm.Op.munmap(elsewhere - P, P),
    ]

    grader = Grader(SAME_PAGE, 3)
    grader.add(result)
    assert grader.worst("strict") == workloads.FORBIDDEN
    assert grader.verdict("strict") is Verdict.VIOLATION and grader.verdict("compat") is Verdict.OK
    table = grader.table()
    assert FALLBACK in table and "compat reading" in table and "winners=1 eexist=2" in table


def test_hint_fallback_with_no_real_winner_is_forbidden_in_compat_too() -> None:
    # Nobody got the requested page yet everyone "succeeded" elsewhere: compat sees 0 winners.
    result = sequential([B + 5 * P, B + 6 * P])
    assert grade_round(SAME_PAGE, result, privileged=True, compat=True).verdict == (
        workloads.FORBIDDEN
    )


def test_map_fixed_at_another_address_is_forbidden() -> None:
    op = mm.Op.mmap(B, P, mm.PROT_READ, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS | mm.MAP_FIXED)
    calls = (probe(0, EEXIST, 0, 1), Operation(1, op, B + P, 2, 3))
    churn = workloads.get("churn")
    grade = grade_round(churn, RoundResult(0, 2, calls, setup=(op,)), privileged=True, compat=True)
    assert grade.verdict == workloads.FORBIDDEN and "MAP_FIXED" in grade.description


def test_partial_overlap_disjointness_and_losers() -> None:
    w = workloads.get("partial-overlap")
    head = probe(0, B, 0, 1, addr=B, pages=3)  # [0, 3)
    tail = probe(1, B + 5 * P, 2, 3, addr=B + 5 * P, pages=3)  # [5, 8)
    sub = probe(2, EEXIST, 4, 5, addr=B + 3 * P, pages=1)  # [3, 4): overlaps neither winner
    ok_loser = probe(2, EEXIST, 4, 5, addr=B + 2 * P, pages=4)  # [2, 6): overlaps both
    assert grade_round(w, RoundResult(0, 3, (head, tail, ok_loser)), privileged=True).verdict == (
        workloads.INTERESTING
    )
    unexplained = grade_round(w, RoundResult(0, 3, (head, tail, sub)), privileged=True)
    assert unexplained.verdict == workloads.FORBIDDEN and "EEXIST" in unexplained.description
    clash = probe(2, B + 2 * P, 4, 5, addr=B + 2 * P, pages=4)
    both = grade_round(w, RoundResult(0, 3, (head, tail, clash)), privileged=True)
    assert both.verdict == workloads.FORBIDDEN and "overlap" in both.description


def test_zero_page_grade_depends_on_privilege() -> None:
    w = workloads.get("zero-page")
    nr = mm.Op.mmap(0, P, mm.PROT_READ, mm.NR)
    calls = (Operation(0, nr, 0, 0, 1), Operation(1, nr, EEXIST, 2, 3))
    result = RoundResult(0, 2, calls, ("zero", "zero"))
    assert grade_round(w, result, privileged=True).verdict == workloads.ACCEPTABLE
    unpriv = grade_round(w, result, privileged=False)
    assert unpriv.verdict == workloads.FORBIDDEN and "CAP_SYS_RAWIO" in unpriv.description
    denied = RoundResult(
        0, 2, tuple(attrs.evolve(c, result=EPERM) for c in calls), ("zero", "zero")
    )
    assert grade_round(w, denied, privileged=False).verdict == workloads.ACCEPTABLE
    assert grade_round(w, denied, privileged=False).key == "zero_eperm=2"
    assert grade_round(w, denied, privileged=True).verdict == workloads.FORBIDDEN


def test_overlapped_needs_two_tasks_in_flight() -> None:
    assert not overlapped(sequential([B, EEXIST]).calls)
    assert overlapped((probe(0, B, 0, 10), probe(1, EEXIST, 5, 6)))
    assert overlapped((probe(0, B, 0, 10), probe(1, None, 20, None), probe(2, EEXIST, 30, 31)))
    # Two calls of one task never overlap each other; only tasks count.
    assert not overlapped((probe(0, B, 0, 10), probe(0, EEXIST, 5, 6)))


def test_from_records_matches_plans_labels_and_reports_mismatch() -> None:
    w = workloads.get("churn")
    plan = w.plan(0, 4, workloads.Space(), seed=1)
    records = []
    for task, ops in enumerate(plan.tasks):
        for k, op in enumerate(ops):
            ok = 0 if op.kind == "munmap" else (op.addr if op.flags & mm.MAP_FIXED else EEXIST)
            records.append(Operation(task, op, ok, 100 * task + k, 100 * task + k + 1, round=0))
    result = RoundResult.from_records(plan, records, round_index=0)
    assert not result.problems and result.setup == plan.setup
    labels = sorted(result.labels)
    assert labels == ["fixed", "munmap", "probe", "probe"]
    grade = grade_round(w, result, privileged=True)
    assert grade.key == "winners=0 eexist=2 fixed_winners=1 munmap_ok=1"
    assert grade.verdict == workloads.ACCEPTABLE

    missing = RoundResult.from_records(plan, records[1:], round_index=0)
    assert missing.problems and grade_round(w, missing, privileged=True).verdict == UNKNOWN


def test_records_in_call_order_get_their_plans_labels() -> None:
    plan = SAME_PAGE.plan(0, 2, workloads.Space(), seed=1)
    op = plan.tasks[0][0]
    records = [Operation(t, op, r, t, t + 1) for t, r in enumerate([EEXIST, op.addr])]
    result = RoundResult.from_records(plan, records)
    assert grade_round(SAME_PAGE, result, privileged=True).verdict == workloads.INTERESTING


def test_grader_histogram_json_counts_every_round() -> None:
    grader = Grader(SAME_PAGE, 3, mm.Params.reference(privileged=False))
    for _ in range(5):
        grader.add(sequential([B, EEXIST, EEXIST]))
    grader.add(sequential([EEXIST, B, EEXIST]))  # task 0 called first but lost
    data = json.loads(json.dumps(grader.to_json()))
    assert data["rounds"] == 6 and data["privileged"] is False
    for mode in ("strict", "compat"):
        rows = data[mode]["outcomes"]
        assert sum(r["count"] for r in rows) == 6
        assert data[mode]["verdict"] == "OK"
    rows = data["strict"]["outcomes"]
    assert [(r["grade"], r["count"]) for r in rows] == [("ACCEPTABLE", 5), ("INTERESTING", 1)]
    assert rows[1]["first_round"] == 0
    assert not grader.failed


def _race_with(
    apply_op: Callable[[mm.State, mm.Params, mm.Op], tuple[int, mm.State]],
    w: workloads.Workload,
    tasks: int,
) -> RoundResult:
    """Run a round serially (task order) on a model whose mmap is `apply_op`."""
    params = mm.Params.reference()
    plan = w.plan(0, tasks, workloads.Space(), seed=3)
    state = mm.State()
    calls, labels = [], []
    for task, ops in enumerate(plan.tasks):
        for op in ops:
            result, state = apply_op(state, params, op)
            calls.append(Operation(task, op, result, 2 * task, 2 * task + 1))
            labels.append(plan.label(task, 0))
    return RoundResult(0, tasks, tuple(calls), tuple(labels))


def test_grading_catches_a_clobbering_model_and_an_old_kernel() -> None:
    def clobber(
        state: mm.State, params: mm.Params, op: mm.Op
    ) -> tuple[int, mm.State]:  # NOREPLACE treated as MAP_FIXED
        return mm.apply(state, params, attrs.evolve(op, flags=op.flags ^ 0x100010))

    def old_kernel(
        state: mm.State, params: mm.Params, op: mm.Op
    ) -> tuple[int, mm.State]:  # NOREPLACE unknown: a mere hint
        return mm.apply(state, params, attrs.evolve(op, flags=op.flags & ~mm.MAP_FIXED_NOREPLACE))

    clobbered = _race_with(clobber, SAME_PAGE, 4)
    assert grade_round(SAME_PAGE, clobbered, privileged=True).key == "winners=4"
    assert grade_round(SAME_PAGE, clobbered, privileged=True, compat=True).verdict == "FORBIDDEN"
    old = _race_with(old_kernel, SAME_PAGE, 4)
    assert grade_round(SAME_PAGE, old, privileged=True).description == FALLBACK
    assert grade_round(SAME_PAGE, old, privileged=True, compat=True).verdict == "ACCEPTABLE"


@pytest.mark.parametrize("name", list(workloads.catalog()))
def test_the_grader_gives_each_reading_its_own_grade(name: str) -> None:
    """`Grader.add` grades the compat reading again only when a probe moved: its pair is the
    pair `grade_round` gives in each reading, with and without moved probes."""
    w = workloads.get(name)
    params = mm.Params.reference()
    space = workloads.Space(B, 1 << 30, P)
    rng = random.Random(name)
    grader = Grader(w, 4, params)
    for r in range(12):
        plan = w.plan(r, 4, space, seed=3)
        state = mm.State.empty()
        for op in plan.setup:
            _, state = mm.apply(state, params, op)
        records = []
        slots = [t for t, ops in enumerate(plan.tasks) for _ in ops]
        rng.shuffle(slots)
        done = [0] * len(plan.tasks)
        for clock, task in enumerate(slots):
            op = plan.tasks[task][done[task]]
            done[task] += 1
            result, state = mm.apply(state, params, op)
            if r % 3 == 0 and mm.is_probe(op) and result < 0:
                result = op.addr + 64 * P  # a probe treated as a hint: placed elsewhere
            records.append(Operation(task, op, result, 2 * clock, 2 * clock + 1, r))
        graded = RoundResult.from_records(plan, records)
        want = tuple(
            grade_round(w, graded, privileged=True, compat=compat) for compat in (False, True)
        )
        assert grader.add(graded) == want
