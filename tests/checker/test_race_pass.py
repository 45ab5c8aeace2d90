"""The race pass: one winner per contested range between unmaps; definite double wins flagged."""

from __future__ import annotations

from pathlib import Path

import mm
from stress.checker import Event, Verdict, check
from stress.checker._mm_check import check_events
from stress.checker._mm_model import MmModel
from stress.checker._race_pass import race_pass

B = 0x100000000000
P = 4096
PARAMS = mm.Params.reference()
RW = mm.PROT_READ | mm.PROT_WRITE


def nr(addr: int, pages: int = 1) -> mm.Op:
    return mm.Op.mmap(addr, pages * P, RW, mm.NR)


def unmap(addr: int = B, pages: int = 1) -> mm.Op:
    return mm.Op.munmap(addr, pages * P)


def probes(winners: set[int], tasks: int = 8, t: int = 0, pages: int = 1) -> list[Event]:
    return [
        Event(k, nr(B, pages), B if k in winners else -mm.EEXIST, t + k, t + 100 + k)
        for k in range(tasks)
    ]


def test_one_winner_is_fine() -> None:
    assert race_pass(probes({0}), PARAMS, [17] * 8) == []


def test_two_winners_flagged_with_round_and_tasks() -> None:
    (finding,) = race_pass(probes({3, 6}), PARAMS, [17] * 8)
    assert finding.round == 17
    assert {finding.first, finding.second} == {3, 6}
    assert finding.message == (
        "round 17: two NOREPLACE probes of [0x100000000000, 0x100000001000) succeeded "
        "(tasks 3 and 6) with no munmap of that range that could come between them"
    )
    # the pass's claim is a real violation: the search agrees
    assert check(MmModel(PARAMS), probes({3, 6})).verdict is Verdict.VIOLATION


def test_overlapping_but_different_ranges() -> None:
    events = [Event(0, nr(B, 2), B, 0, 10), Event(1, nr(B + P, 2), B + P, 1, 11)]
    (finding,) = race_pass(events, PARAMS)
    assert finding.overlap == (B + P, B + 2 * P)
    events = [Event(0, nr(B, 1), B, 0, 10), Event(1, nr(B + P, 1), B + P, 1, 11)]
    assert race_pass(events, PARAMS) == []  # touching ranges do not overlap


def test_concurrent_unmap_between_them_is_fine() -> None:
    events = [*probes({0, 5}), Event(9, unmap(), 0, 50, 60)]
    assert race_pass(events, PARAMS) == []
    assert check(MmModel(PARAMS), events).verdict is Verdict.OK


def test_unmap_that_cannot_fit_between_does_not_excuse() -> None:
    # the munmap returned before either probe was invoked
    events = [Event(0, unmap(), 0, 0, 5), *probes({1, 2}, t=10)]
    assert len(race_pass(events, PARAMS)) == 1
    # a munmap of another range, or one that failed, does not help either
    events = [Event(0, unmap(B + 4 * P), 0, 50, 60), Event(0, unmap(), -mm.EINVAL, 50, 60)]
    assert len(race_pass(events + probes({1, 2}), PARAMS)) == 1


def test_pending_unmap_may_come_between() -> None:
    events = [Event(9, unmap(), None, 50, None), *probes({1, 2})]
    assert race_pass(events, PARAMS) == []


def test_map_fixed_may_clobber_but_not_be_clobbered() -> None:
    fixed = mm.Op.mmap(B, P, RW, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS | mm.MAP_FIXED)
    # NOREPLACE first, then MAP_FIXED over it: fine
    events = [Event(0, nr(B), B, 0, 10), Event(1, fixed, B, 5, 15)]
    assert race_pass(events, PARAMS) == []
    # MAP_FIXED returned before the probe was invoked: the probe had to fail
    events = [Event(1, fixed, B, 0, 4), Event(0, nr(B), B, 5, 15)]
    (finding,) = race_pass(events, PARAMS)
    assert "before it was invoked" in finding.message
    assert check(MmModel(PARAMS), events).verdict is Verdict.VIOLATION


def test_rounds_are_screened_separately() -> None:
    first = probes({0}, t=0)
    second = probes({0}, t=1000)
    cleanup = [Event(0, unmap(), 0, 500, 510)]
    events = first + cleanup + second
    rounds = [1] * 9 + [2] * 8
    assert race_pass(events, PARAMS, rounds) == []
    result = check_events(PARAMS, events, rounds)
    assert result.verdict is Verdict.OK


def test_check_events_reports_the_race_pass_finding_confirmed() -> None:
    events = [*probes({0}), Event(0, unmap(), 0, 500, 510), *probes({2, 4}, t=1000)]
    rounds = [1] * 9 + [2] * 8
    result = check_events(PARAMS, events, rounds)
    assert result.verdict is Verdict.VIOLATION
    assert result.reason.startswith("round 2: two NOREPLACE probes")
    assert result.counterexample is not None
    tasks = {result.counterexample.events[k].task for k, _ in result.counterexample.stuck}
    assert tasks & {2, 4}


def test_benchmark_histories_have_the_right_verdicts(tmp_path: Path) -> None:
    from stress.checker._mm_model import check_history
    from stress.history import read_history
    from stress.selftest.bench_race import write_race_history

    rounds = write_race_history(tmp_path / "ok.jsonl", 3000, 16)
    result = check_history(*read_history(tmp_path / "ok.jsonl"))
    assert result.verdict is Verdict.OK and result.partitions == rounds
    write_race_history(tmp_path / "bad.jsonl", 3000, 16, forge_round=rounds - 3)
    result = check_history(*read_history(tmp_path / "bad.jsonl"))
    assert result.verdict is Verdict.VIOLATION
    assert result.reason.startswith(f"round {rounds - 3}: two NOREPLACE probes")
