"""The mm checker against an independent brute-force oracle (`tests/checker/oracle/brute.py`).

`test_checker_agrees_with_oracle` draws tiny histories (`tests/checker/oracle/strategies.py`: 2-4
tasks, 1-4 calls each, NOREPLACE / MAP_FIXED / hinted mmaps, munmap, mprotect, pending calls,
touching and nested intervals, results from a sequential run of the spec and perturbed ones)
and requires the checker's verdict to be the oracle's: OK when the oracle finds an order,
VIOLATION when it proves there is none. An UNKNOWN from the checker fails the test only when
the oracle decides. A VIOLATION's counterexample, and the minimized one, must themselves be
non-linearizable per the oracle. It runs in three variants: the checker's reductions as
shipped; the size thresholds that switch on the footprint partition and the process pool set
to 0 and 1, so that every reduction runs on these small inputs; and the same with
`mm_check.witness` (the direct-order shortcut) off, so that every part is searched and two or
more parts really go to the process pool (tiny histories otherwise leave at most one part to
search, and the pool needs two).

CI runs 150 examples per variant. A longer run (tens of thousands of examples), e.g.:

    MMRACE_ORACLE_EXAMPLES=20000 .venv/bin/python -m pytest tests/checker/test_oracle.py \
        --timeout 0 -k agrees -p no:cacheprovider

(`MMRACE_ORACLE_EXAMPLES` is the number of examples per variant.)

`test_former_disagreements_stay_fixed` keeps the minimal histories of every disagreement
found so far (program order of touching stamps, mappings hinted within their length of 2^64,
pending non-fixed mmaps, impossible results), each with the cause that was fixed, as plain
regression cases. The oracle is tested on its own on hand-written
histories with known answers and on sequential runs (`test_oracle_*`).

Every use of mmrace's checker goes through `_checker()` below, the only place that imports
from `stress`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings

import mm
from tests.checker.oracle import brute
from tests.checker.oracle.brute import Call
from tests.checker.oracle.strategies import Tiny, histories


class Judged(NamedTuple):
    verdict: str  # "OK", "VIOLATION", "UNKNOWN"
    reason: str
    counterexample: tuple[Call, ...] | None
    minimized: tuple[Call, ...] | None


class Checker(NamedTuple):
    check: Callable[[mm.Params, Sequence[Call], float, str], Judged]


def _checker() -> Checker:
    """mmrace's checker entry point and its size thresholds: the only imports from `stress`."""
    from stress.checker import Event, MmModel, Tuning, Verdict, check_events, minimized

    def calls_of(events: Sequence[Any]) -> tuple[Call, ...]:
        return tuple(
            Call(e.task, e.input, None if e.ret is None else e.output, e.call, e.ret)
            for e in events
        )

    tunings = {
        "as-shipped": Tuning(),
        # the footprint partition and the process pool whatever the size
        "thresholds-0": Tuning(split_above=0, pool_min_events=0, pool_min_partitions=1),
        # and no part settled by a direct order: every part goes to the engine (and, with two
        # or more, to its process pool, which tiny histories otherwise never reach)
        "thresholds-0-no-witness": Tuning.everything(),
    }

    def check(params: mm.Params, calls: Sequence[Call], timeout: float, variant: str) -> Judged:
        events = [Event(c.task, c.op, c.result, c.call, c.ret) for c in calls]
        result = check_events(params, events, None, timeout=timeout, tuning=tunings[variant])
        cex = small = None
        if result.verdict is Verdict.VIOLATION and result.counterexample is not None:
            cex = calls_of(result.counterexample.events)
            shrunk = minimized(MmModel(params), result, timeout)
            assert shrunk.counterexample is not None
            small = calls_of(shrunk.counterexample.events)
        return Judged(result.verdict.value, result.reason, cex, small)

    return Checker(check)


TIMEOUT = 10.0
EXAMPLES = int(os.environ.get("MMRACE_ORACLE_EXAMPLES", "150"))
CHECKER = _checker()
P = 4096
B = 0x100000000000
TOP = 1 << 64
NR = mm.NR
ANON = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS
RW = mm.PROT_READ | mm.PROT_WRITE
REF = mm.Params.reference()


ANCHOR = B + 64 * P  # "moved": a serial segment here comes first and sets the common base


def anchored(calls: Sequence[Call]) -> list[Call]:
    """``calls`` after a serial mmap and munmap at ANCHOR (a clean cut, linearizable): the
    checker then moves every movable segment of ``calls`` to ANCHOR (`_mm_shift`)."""
    first = min((c.call for c in calls), default=0)
    later = [
        c._replace(call=c.call - first + 10, ret=None if c.ret is None else c.ret - first + 10)
        for c in calls
    ]
    return [
        Call(0, _nr(ANCHOR), ANCHOR, 0, 1),
        Call(0, mm.Op.munmap(ANCHOR, P), 0, 2, 3),
        *later,
    ]


def disagreement(
    params: mm.Params, calls: Sequence[Call], timeout: float = TIMEOUT, variant: str = "as-shipped"
) -> str | None:
    """Why the checker's answer on this history is wrong per the oracle (None: it is right).
    Variant "moved": the checker judges the history after an anchor segment (`anchored`)."""
    truth = brute.check(params, calls)
    if truth.linearizable is True:
        assert brute.replay(params, calls, truth.order), "the oracle's own witness fails"
    if variant == "moved":
        got = CHECKER.check(params, anchored(calls), timeout, "as-shipped")
    else:
        got = CHECKER.check(params, calls, timeout, variant)
    want = {True: "OK", False: "VIOLATION", None: None}[truth.linearizable]
    if want is not None and got.verdict != want:
        return f"checker {got.verdict} ({got.reason}); oracle {want} ({truth.reason})"
    for name, cex in (("counterexample", got.counterexample), ("minimized", got.minimized)):
        if cex is not None and brute.check(params, cex).linearizable is True:
            return f"checker's {name} is linearizable per the oracle: {cex!r}"
    return None


def _run_differential(variant: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(histories(movable=variant == "moved"))
    def differ(h: Tiny) -> None:
        problem = disagreement(h.params, h.calls, variant=variant)
        assert problem is None, f"{problem}\n{h.note}: params={h.params!r}\ncalls={h.calls!r}"

    differ()


@pytest.mark.parametrize(
    "variant", ["as-shipped", "thresholds-0", "thresholds-0-no-witness", "moved"]
)
def test_checker_agrees_with_oracle(variant: str) -> None:
    _run_differential(variant)


# --- the oracle on its own ------------------------------------------------------------------


def _nr(addr: int = B, length: int = P) -> mm.Op:
    return mm.Op.mmap(addr, length, RW, NR)


def _hint(addr: int, length: int = P) -> mm.Op:
    return mm.Op.mmap(addr, length, RW, ANON)


def test_oracle_double_win_without_munmap_is_a_violation() -> None:
    calls = [Call(0, _nr(), B, 0, 10), Call(1, _nr(), B, 0, 10)]
    assert brute.check(REF, calls).linearizable is False


def test_oracle_double_win_with_a_munmap_between_is_linearizable() -> None:
    calls = [
        Call(0, _nr(), B, 0, 10),
        Call(1, _nr(), B, 0, 10),
        Call(2, mm.Op.munmap(B, P), 0, 0, 10),
    ]
    got = brute.check(REF, calls)
    assert got.linearizable is True
    assert [i for i, _ in got.order] == [0, 2, 1] or [i for i, _ in got.order] == [1, 2, 0]
    assert brute.replay(REF, calls, got.order)


def test_oracle_munmap_that_returned_before_both_wins_does_not_help() -> None:
    calls = [
        Call(2, mm.Op.munmap(B, P), 0, 0, 1),
        Call(0, _nr(), B, 2, 10),
        Call(1, _nr(), B, 2, 10),
    ]
    assert brute.check(REF, calls).linearizable is False


def test_oracle_keeps_program_order_when_stamps_touch() -> None:
    # task 0: EEXIST on a free page, then wins it; the stamps touch at 5.
    same_task = [Call(0, _nr(), -mm.EEXIST, 1, 5), Call(0, _nr(), B, 5, 9)]
    assert brute.check(REF, same_task).linearizable is False
    # the same calls from two tasks are concurrent (equal stamps do not order them)
    two_tasks = [Call(1, _nr(), -mm.EEXIST, 1, 5), Call(0, _nr(), B, 5, 9)]
    got = brute.check(REF, two_tasks)
    assert got.linearizable is True
    assert [i for i, _ in got.order] == [1, 0]
    # one tick apart they are ordered by real time
    apart = [Call(1, _nr(), -mm.EEXIST, 1, 4), Call(0, _nr(), B, 5, 9)]
    assert brute.check(REF, apart).linearizable is False


def test_oracle_program_order_holds_even_against_the_stamps() -> None:
    # task 0's second call was invoked first by the stamps' reading of overlapping intervals:
    # program order is by call stamp, so the EEXIST (called at 1) must come first.
    calls = [Call(0, _nr(), -mm.EEXIST, 1, 8), Call(0, _nr(), B, 2, 9)]
    assert brute.check(REF, calls).linearizable is False


def test_oracle_pending_munmap_may_take_effect_between() -> None:
    calls = [
        Call(0, _nr(), B, 0, 10),
        Call(1, _nr(), B, 0, 10),
        Call(2, mm.Op.munmap(B, P), None, 3, None),
    ]
    got = brute.check(REF, calls)
    assert got.linearizable is True
    assert (2, 0) in got.order


def test_oracle_pending_munmap_invoked_too_late_does_not_help() -> None:
    calls = [
        Call(0, _nr(), B, 0, 10),
        Call(1, _nr(), B, 0, 10),
        Call(2, mm.Op.munmap(B, P), None, 11, None),
    ]
    assert brute.check(REF, calls).linearizable is False


def test_oracle_pending_call_is_dropped_after_its_tasks_next_call() -> None:
    # task 0's pending munmap comes before its NOREPLACE in program order, and task 1's win
    # comes after that NOREPLACE in real time: the munmap cannot come between the wins.
    calls = [
        Call(0, mm.Op.munmap(B, P), None, 0, None),
        Call(0, _nr(), B, 1, 10),
        Call(1, _nr(), B, 11, 20),
    ]
    assert brute.check(REF, calls).linearizable is False
    # in another task, the same munmap may take effect between them
    other = [calls[0]._replace(task=2), *calls[1:]]
    assert brute.check(REF, other).linearizable is True


def test_oracle_pending_nonfixed_mmap_may_land_anywhere_allowed() -> None:
    # a pending hint-0 mmap of two pages explains EEXIST on B and B+P (placed at B) ...
    two = [
        Call(0, _hint(0, 2 * P), None, 0, None),
        Call(1, _nr(B), -mm.EEXIST, 1, 2),
        Call(2, _nr(B + P), -mm.EEXIST, 1, 2),
    ]
    got = brute.check(REF, two)
    assert got.linearizable is True
    assert (0, B) in got.order
    # ... but not on B and B+2P, three pages apart
    apart = [*two[:2], Call(2, _nr(B + 2 * P), -mm.EEXIST, 1, 2)]
    assert brute.check(REF, apart).linearizable is False
    # a free hint must be taken: hinted at B+P it cannot cover B
    hinted = [Call(0, _hint(B + P), None, 0, None), Call(1, _nr(B), -mm.EEXIST, 1, 2)]
    assert brute.check(REF, hinted).linearizable is False
    hinted_at_b = [Call(0, _hint(B), None, 0, None), Call(1, _nr(B), -mm.EEXIST, 1, 2)]
    assert brute.check(REF, hinted_at_b).linearizable is True


def test_oracle_says_unknown_outside_its_placement_domain() -> None:
    tight = mm.Params(max_map_count=4)
    apart = [
        Call(0, _hint(0, 2 * P), None, 0, None),
        Call(1, _nr(B), -mm.EEXIST, 1, 2),
        Call(2, _nr(B + 2 * P), -mm.EEXIST, 1, 2),
    ]
    assert brute.check(tight, apart).linearizable is None
    assert brute.check(REF, apart).linearizable is False


def test_oracle_replay_rejects_a_wrong_witness() -> None:
    calls = [Call(1, _nr(), -mm.EEXIST, 1, 4), Call(0, _nr(), B, 5, 9)]
    assert not brute.replay(REF, calls, [(1, B), (0, -mm.EEXIST)])  # breaks real time
    assert not brute.replay(REF, calls, [(0, -mm.EEXIST), (1, B)])  # results illegal
    assert not brute.replay(REF, calls, [(1, B)])  # a completed call left out


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(perturb=False))
def test_oracle_accepts_every_sequential_run(h: Tiny) -> None:
    """Unperturbed histories are linearizable by construction, pending non-fixed mmaps placed
    anywhere (also far pages) included: the oracle must find an order, and it must replay."""
    got = brute.check(h.params, h.calls)
    assert got.linearizable is True, got
    assert brute.replay(h.params, h.calls, got.order)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_oracle_shortcut_agrees_with_its_search(h: Tiny) -> None:
    """The impossible-result shortcut never changes a verdict the full search reaches."""
    quick = brute.check(h.params, h.calls)
    full = brute.check(h.params, h.calls, shortcut=False)
    assert quick.linearizable == full.linearizable, (quick, full)


# --- the disagreements found so far ---------------------------------------------------------
# The minimal histories of every class of disagreement the differential test found, each with
# the diagnosis of the checker defect that caused it (now fixed): they must stay agreed.

_WRAP = mm.Op.mmap(TOP - P, 2 * P, RW, ANON)  # hint 2^64 - P, two pages: the hint never fits
_HINT0 = mm.Op.mmap(0, P, RW, ANON)


def _known(name: str, calls: list[Call], forced: bool, reason: str, **kw: Any) -> Any:
    """A disagreement the oracle found and the checker no longer has (``reason``: its cause)."""
    return pytest.param((REF, tuple(calls), forced, kw.get("timeout", TIMEOUT)), id=name)


_PROGRAM_ORDER = (
    "stress/checker/_search.py check_partition (and mm_check.witness): calls whose stamps "
    "touch are concurrent whatever their task, so a task's later call is linearized before "
    "its earlier one (the engine never looks at Event.task)"
)
_WRAP_LENGTH = (
    "stress/checker/mm_partition.py span/created/footprint take a non-fixed mmap's length from "
    "its hint range clipped at 2^64, so a mapping hinted within its length of 2^64 is one page "
    "short: time_segments cuts where its second page is still mapped, components splits off "
    "the calls on that page"
)
_PENDING_NONFIXED = (
    "stress/checker/mm_check.py _check_events: any VIOLATION whose counterexample holds a "
    "pending non-fixed mmap becomes UNKNOWN (mm_model.MmModel.pending_outcomes tries only the "
    "spec's own placement)"
)
_IMPOSSIBLE = (
    "stress/checker/_search.py check_partition: a result that no state allows is only found "
    "illegal after every order of the concurrent calls around it was tried (exponential), so "
    "the time budget runs out: UNKNOWN instead of VIOLATION"
)

KNOWN = [
    _known(
        "program-order-touching-stamps",
        [Call(0, _nr(B), -mm.EEXIST, 0, 1), Call(0, _nr(B), B, 1, 2)],
        False,
        _PROGRAM_ORDER,
    ),
    _known(
        "program-order-touching-stamps-partitioned",
        [
            Call(0, _nr(B), -mm.EEXIST, 0, 1),
            Call(0, _nr(B), B, 1, 2),
            Call(1, _nr(B + P), B + P, 0, 2),
        ],
        True,
        _PROGRAM_ORDER,
    ),
    _known(
        "program-order-same-call-stamp",  # the call that returned at its own stamp came first
        [
            Call(0, _nr(B + P), -mm.EEXIST, 18, 21),
            Call(0, _WRAP, B + P, 18, 18),
        ],
        False,
        _PROGRAM_ORDER,
    ),
    _known(
        "hint-wrap-time-cut-false-ok",
        [
            Call(0, _WRAP, B, 0, 1),
            Call(0, mm.Op.munmap(B, P), 0, 2, 3),
            Call(0, _nr(B + P), B + P, 4, 5),
        ],
        False,
        _WRAP_LENGTH,
    ),
    _known(
        "hint-wrap-time-cut-false-violation",  # a sequential run: its second page stays mapped
        [
            Call(0, _WRAP, B, 0, 0),
            Call(0, mm.Op.munmap(B, P), 0, 1, 1),
            Call(0, _nr(B + P), -mm.EEXIST, 2, 2),
        ],
        False,
        _WRAP_LENGTH,
    ),
    _known(
        "hint-wrap-footprint-false-violation",
        [Call(0, _WRAP, B, 0, 1), Call(1, _nr(B + P), -mm.EEXIST, 2, 3)],
        True,
        _WRAP_LENGTH,
    ),
    _known(
        "hint-wrap-footprint-false-ok",
        [Call(0, _WRAP, B, 0, 2), Call(1, _nr(B + P), B + P, 1, 3)],
        True,
        _WRAP_LENGTH,
    ),
    _known(
        "pending-nonfixed-placed-elsewhere-ok",
        [Call(0, _HINT0, None, 0, None), Call(1, _nr(B), -mm.EEXIST, 1, 2)],
        False,
        _PENDING_NONFIXED,
    ),
    _known(
        "pending-nonfixed-that-cannot-map-violation",
        [
            Call(0, mm.Op.mmap(0, 0, RW, ANON), None, 0, None),  # length 0: EINVAL always
            Call(1, _nr(B), -mm.EEXIST, 1, 2),
        ],
        False,
        _PENDING_NONFIXED,
    ),
    _known(
        "pending-nonfixed-too-long-to-map-violation",  # 2^64 - P: ENOMEM always, still exact
        [
            Call(0, mm.Op.mmap(0, TOP - P, RW, ANON), None, 0, None),
            Call(1, _nr(B), -mm.EEXIST, 1, 2),
        ],
        True,
        _PENDING_NONFIXED,
    ),
    _known(
        "pending-nonfixed-irrelevant-violation",
        [Call(0, _HINT0, None, 0, None), Call(1, _nr(B), B + P, 1, 2)],  # NR at another address
        False,
        _PENDING_NONFIXED,
    ),
    _known(
        "pending-nonfixed-free-hint-violation",  # its free hint B+P is forced: cannot cover B
        [Call(0, _hint(B + P), None, 0, None), Call(1, _nr(B), -mm.EEXIST, 1, 2)],
        False,
        _PENDING_NONFIXED,
    ),
    _known(
        "impossible-munmap-enomem-times-out",
        [
            *(Call(k, _nr(B + 2 * k * P), B + 2 * k * P, 0, 10) for k in range(20)),
            Call(20, mm.Op.munmap(B + 40 * P, P), -mm.ENOMEM, 0, 10),
        ],
        False,
        _IMPOSSIBLE,
        timeout=2.0,
    ),
]


@pytest.mark.parametrize("case", KNOWN)
def test_former_disagreements_stay_fixed(
    case: tuple[mm.Params, tuple[Call, ...], bool, float],
) -> None:
    params, calls, forced, timeout = case
    variant = "thresholds-0" if forced else "as-shipped"
    assert disagreement(params, calls, timeout, variant) is None
