"""The mm model for the checker: steps agree with the spec, observers, partitions, explanations."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mm
from stress.checker import Event, Verdict, check
from stress.checker import _mm_partition as part
from stress.checker._mm_check import check_events, witness
from stress.checker._mm_model import MmModel

B = 0x100000000000
P = 4096
PARAMS = mm.Params.reference()
MODEL = MmModel(PARAMS)
NR = mm.NR
RW = mm.PROT_READ | mm.PROT_WRITE
FIXED = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS | mm.MAP_FIXED


def nr(addr: int, pages: int = 1) -> mm.Op:
    return mm.Op.mmap(addr, pages * P, RW, NR)


def ev(task: int, op: mm.Op, out: int | None, call: int, ret: int | None) -> Event:
    return Event(task, op, out, call, ret)


_ops = st.one_of(
    st.builds(
        lambda a, n, f: mm.Op.mmap(B + a * P, n * P, RW, f),
        st.integers(0, 6),
        st.integers(1, 3),
        st.sampled_from(
            [
                NR,
                mm.MAP_PRIVATE | mm.MAP_ANONYMOUS | mm.MAP_FIXED,
                mm.MAP_PRIVATE | mm.MAP_ANONYMOUS,
            ]
        ),
    ),
    st.builds(lambda a, n: mm.Op.munmap(B + a * P, n * P), st.integers(0, 6), st.integers(1, 3)),
    st.builds(
        lambda a, n, p: mm.Op.mprotect(B + a * P, n * P, p),
        st.integers(0, 6),
        st.integers(0, 3),
        st.sampled_from([0, 1, 3, 0x10]),
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_ops, max_size=12))
def test_step_agrees_with_the_spec(ops: list[mm.Op]) -> None:
    state = mm.State.empty()
    assert MODEL.init() == state
    for op in ops:
        result, after = mm.apply(state, PARAMS, op)
        assert MODEL.step(state, op, result) == after
        if not mm.is_nonfixed(op):  # a fixed call's result is determined: any other is illegal
            for other in (result + P, -mm.EEXIST, -mm.ENOMEM, 0):
                if other != result:
                    assert MODEL.step(state, op, other) is None
        outcomes = list(MODEL.pending_outcomes(state, op))
        assert outcomes == [after] or (outcomes == [] and after == state)
        if result < 0 and MODEL.is_observer(op, result):
            assert after == state
        state = after


def test_sequential_history_from_the_spec_is_linearizable() -> None:
    rng = random.Random(3)
    state = mm.State.empty()
    events = []
    t = 0
    for k in range(200):
        op = rng.choice([nr(B + rng.randrange(8) * P), mm.Op.munmap(B + rng.randrange(8) * P, P)])
        result, state = mm.apply(state, PARAMS, op)
        events.append(ev(k % 4, op, result, t, t + 5))
        t += 10
    assert check(MODEL, events).verdict is Verdict.OK
    # corrupt one EEXIST into a success: the search must notice
    k = next(i for i, e in enumerate(events) if e.output == -mm.EEXIST)
    e = events[k]
    bad = [*events[:k], ev(9, e.input, e.input.addr, e.call, e.ret), *events[k + 1 :]]
    assert check(MODEL, bad).verdict is Verdict.VIOLATION


def test_observers() -> None:
    assert MODEL.is_observer(nr(B), -mm.EEXIST)
    assert MODEL.is_observer(mm.Op.munmap(B + 1, P), -mm.EINVAL)
    assert MODEL.is_observer(mm.Op.mprotect(B, P, 0x10), -mm.EINVAL)
    assert MODEL.is_observer(mm.Op.mprotect(B, 0, 1), 0)
    assert not MODEL.is_observer(mm.Op.mprotect(B, 2 * P, 1), -mm.ENOMEM)  # partial effect
    assert not MODEL.is_observer(nr(B), B)
    assert not MODEL.is_observer(mm.Op.munmap(B, P), 0)


def test_pending_probe_may_explain_a_later_eexist() -> None:
    events = [ev(0, nr(B), None, 0, None), ev(1, nr(B), -mm.EEXIST, 10, 20)]
    assert check(MODEL, events).verdict is Verdict.OK


def test_nonfixed_placement_checked_not_predicted() -> None:
    hint = mm.Op.mmap(B, P, RW, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS)
    assert check(MODEL, [ev(0, hint, B, 0, 1)]).verdict is Verdict.OK
    # hint free, so another address is wrong
    assert check(MODEL, [ev(0, hint, B + 8 * P, 0, 1)]).verdict is Verdict.VIOLATION
    # hint taken: any free address will do
    events = [ev(0, nr(B), B, 0, 1), ev(1, hint, B + 8 * P, 2, 3)]
    assert check(MODEL, events).verdict is Verdict.OK


def test_partition_splits_disjoint_ranges_and_joins_overlaps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = [ev(0, nr(B), B, 0, 10), ev(1, nr(B), -mm.EEXIST, 1, 11)]
    b = [ev(2, nr(B + 4 * P, 2), B + 4 * P, 2, 12), ev(3, nr(B + 5 * P), -mm.EEXIST, 3, 13)]
    touching = [ev(4, nr(B + P), B + P, 4, 14)]
    assert [len(p) for p in part.partition(a + b + touching, PARAMS)] == [5]  # small: whole
    parts = part.partition(a + b + touching, PARAMS, split_above=0)
    assert sorted(sorted(e.task for e in p) for p in parts) == [[0, 1], [2, 3], [4]]


def test_an_enomem_only_the_map_count_explains_is_a_part_of_its_own() -> None:
    won, impossible = ev(0, nr(B), B, 0, 10), ev(1, nr(B + 8 * P), -mm.ENOMEM, 1, 11)
    assert part.footprint(impossible.input, -mm.ENOMEM, PARAMS) == part.MAP_COUNT
    assert part.components([won, impossible], PARAMS) == [[impossible], [won]]
    too_long = ev(1, mm.Op.mmap(B, 1 << 48, RW, NR), -mm.ENOMEM, 1, 11)
    assert part.components([won, too_long], PARAMS) == [[won, too_long]]  # its length explains
    pending = ev(2, mm.Op.mmap(B, P, RW, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS), None, 0, None)
    coupled = part.components([won, impossible, pending], PARAMS)
    assert coupled == [[impossible], [won, pending]]  # the rest stays one part


def test_an_impossible_munmap_in_a_long_segment_is_a_violation_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events = _rounds(200)
    # A munmap that never answers keeps every earlier call in flight: no time cut, one segment.
    events.append(ev(8, mm.Op.munmap(B + (1 << 31), P), None, 0, None))
    last = max(e.ret or 0 for e in events)
    events.append(ev(9, mm.Op.munmap(B + (1 << 30), P), -mm.ENOMEM, last + 1, last + 2))
    assert len(part.time_segments(events, PARAMS)) == 1
    result = check_events(PARAMS, events, None, timeout=5)
    assert result.verdict is Verdict.VIOLATION
    assert result.counterexample is not None and len(result.counterexample.events) == 1
    (why,) = [w for _, w in result.counterexample.stuck]
    assert "max_map_count" in why


def test_nonfixed_footprint_includes_its_hint() -> None:
    hint = mm.Op.mmap(B, P, RW, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS)
    ranges = part.footprint(hint, B + 64 * P, PARAMS)
    assert isinstance(ranges, list)
    assert (B + 64 * P, B + 65 * P) in ranges
    assert any(lo <= B < hi for lo, hi in ranges)
    assert part.footprint(hint, None, PARAMS) is None  # pending: may be anywhere


def _rounds(n: int, tasks: int = 4) -> list[Event]:
    events = []
    t = 0
    for _ in range(n):
        for k in range(tasks):
            events.append(ev(k, nr(B, 2), B if k == 0 else -mm.EEXIST, t + k, t + 50 + k))
        events.append(ev(0, mm.Op.munmap(B, 2 * P), 0, t + 100, t + 110))
        t += 200
    return events


def test_time_cuts_at_covering_serial_munmaps() -> None:
    segments = part.time_segments(_rounds(5), PARAMS)
    assert [len(s) for s in segments] == [5] * 5
    # a munmap that does not cover the round's mapping: no cut there
    events = _rounds(2)
    events[4] = ev(0, mm.Op.munmap(B, P), 0, 100, 110)
    assert [len(s) for s in part.time_segments(events, PARAMS)] == [10]
    # overlapping in time: no cut
    events = _rounds(2)
    events[5] = ev(0, nr(B, 2), B, 105, 300)
    assert len(part.time_segments(events, PARAMS)) == 1


def test_check_events_on_many_rounds() -> None:
    events = _rounds(300)
    result = check_events(PARAMS, events, [k // 5 for k in range(len(events))])
    assert result.verdict is Verdict.OK
    assert result.partitions == 300
    # a cleanup munmap that lied (nothing unmapped): the next round's win is impossible
    events[4] = ev(0, mm.Op.munmap(B, 2 * P), -mm.EINVAL, 100, 110)
    assert check_events(PARAMS, events).verdict is Verdict.VIOLATION


def test_witness_promotes_a_later_winner() -> None:
    events = [
        ev(1, nr(B), -mm.EEXIST, 0, 50),
        ev(0, nr(B), B, 5, 20),
    ]
    assert witness(MODEL, events)
    # the loser returned before the winner was invoked: no order, and no witness
    events = [ev(1, nr(B), -mm.EEXIST, 0, 4), ev(0, nr(B), B, 5, 20)]
    assert not witness(MODEL, events)
    assert check(MODEL, events).verdict is Verdict.VIOLATION


def test_witness_keeps_the_engines_program_order_for_calls_of_one_instant() -> None:
    # one task, two calls invoked at one instant: program order takes the one that returned
    # first first (`_search.time_order`), here the EEXIST with nothing mapped yet
    events = [ev(0, nr(B), B, 10, 20), ev(0, nr(B), -mm.EEXIST, 10, 15)]
    assert not witness(MODEL, events)
    assert check(MODEL, events).verdict is Verdict.VIOLATION
    assert check_events(PARAMS, events).verdict is Verdict.VIOLATION
    # returned the other way round, the same lines are linearizable, and the witness says so
    events = [ev(0, nr(B), B, 10, 15), ev(0, nr(B), -mm.EEXIST, 10, 20)]
    assert witness(MODEL, events)
    assert check_events(PARAMS, events).verdict is Verdict.OK


def _stuck(events: list[Event]) -> str:
    result = check(MODEL, events)
    assert result.verdict is Verdict.VIOLATION and result.counterexample is not None
    return " | ".join(why for _, why in result.counterexample.stuck)


def test_explain_names_who_mapped_the_range_first() -> None:
    text = _stuck([ev(3, nr(B, 2), B, 0, 10), ev(7, nr(B), B, 20, 30)])
    assert (
        "task 7's mmap returned 0x100000000000 although task 3 had mapped "
        "[0x100000000000, 0x100000001000) before task 7 was invoked"
    ) in text


def test_explain_eexist_on_a_free_range() -> None:
    text = _stuck([ev(4, nr(B), -mm.EEXIST, 0, 10)])
    assert (
        "task 4's mmap failed with EEXIST although nothing was mapped in "
        "[0x100000000000, 0x100000001000) at any point of this order where it could take effect"
    ) in text


def test_explain_a_noreplace_that_returned_another_address() -> None:
    elsewhere = 0x7F0000000000
    text = _stuck([ev(3, nr(B), B, 0, 10), ev(5, nr(B), elsewhere, 20, 30)])
    assert (
        "task 5's mmap returned 0x7f0000000000, but a MAP_FIXED_NOREPLACE mmap returns its "
        "requested address 0x100000000000 or fails: the flag was ignored"
    ) in text


def test_explain_wrong_errors() -> None:
    text = _stuck([ev(2, mm.Op.munmap(B + 1, P), 0, 0, 10)])
    assert "task 2's munmap returned 0 but the spec gives EINVAL for these arguments" in text
    text = _stuck([ev(2, mm.Op.mprotect(B, P, 1), 0, 0, 10)])
    assert "task 2's mprotect returned 0 but the spec gives ENOMEM here" in text


def test_describe() -> None:
    e = ev(3, nr(B), B, 0, 1)
    assert MODEL.describe_operation(e) == (
        "mmap(0x100000000000, 0x1000, READ|WRITE, PRIVATE|ANONYMOUS|FIXED_NOREPLACE) "
        "-> 0x100000000000"
    )
    assert MODEL.describe_operation(ev(3, nr(B), None, 0, None)).endswith("-> no response")
    assert MODEL.describe_state(mm.State.empty()) == "nothing mapped"
    _, state = mm.apply(mm.State.empty(), PARAMS, nr(B))
    assert "[0x100000000000, 0x100000001000)" in MODEL.describe_state(state)


@pytest.mark.parametrize("workers", [1, 2])
def test_model_is_picklable_for_the_pool(workers: int) -> None:
    events = _rounds(20)
    events[7] = ev(2, nr(B, 2), B, events[7].call, events[7].ret)  # a second winner
    result = check(MODEL, events, workers=workers)
    assert result.verdict is Verdict.VIOLATION


def _random_history(rng: random.Random, n: int) -> list[Event]:
    """Calls applied atomically in a random order at random points inside random intervals;
    then, sometimes, one result corrupted, one call made pending."""
    state = mm.State.empty()
    events = []
    point = 0
    for k in range(n):
        point += rng.randrange(1, 30)
        kind = rng.random()
        addr = B + rng.randrange(6) * P
        if kind < 0.5:
            flags = rng.choice([NR, NR, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS | mm.MAP_FIXED])
            op = mm.Op.mmap(addr, rng.randrange(1, 3) * P, RW, flags)
        elif kind < 0.65:
            op = mm.Op.mmap(addr, P, RW, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS)
        elif kind < 0.9:
            op = mm.Op.munmap(addr, rng.randrange(1, 4) * P)
        else:
            op = mm.Op.mprotect(addr, rng.randrange(1, 3) * P, rng.choice([1, 3]))
        result, state = mm.apply(state, PARAMS, op)
        call = point - rng.randrange(0, 40)
        # one task per call: the intervals overlap at random, and a task's calls are sequential
        events.append(ev(k, op, result, max(0, call), point + rng.randrange(0, 40)))
    if rng.random() < 0.6:
        k = rng.randrange(n)
        e = events[k]
        wrong = rng.choice([-mm.EEXIST, e.input.addr, 0, -mm.ENOMEM])
        events[k] = ev(e.task, e.input, wrong, e.call, e.ret)
    if rng.random() < 0.3:
        k = rng.randrange(n)
        e = events[k]
        if not mm.is_nonfixed(e.input):
            events[k] = ev(e.task, e.input, None, e.call, None)
    return events


@pytest.mark.parametrize("seed", range(40))
def test_fast_paths_agree_with_the_plain_search(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Race pass, partition (split to the finest) and witness never change the verdict."""
    monkeypatch.setattr(part, "SMALL", 0)
    rng = random.Random(seed)
    events = _random_history(rng, rng.randrange(3, 14))
    plain = check(MODEL, events, partitioned=False, workers=1).verdict
    fast = check_events(PARAMS, events, workers=1).verdict
    assert fast is plain or (fast is Verdict.UNKNOWN and plain is Verdict.VIOLATION)


def test_check_events_searches_the_parts_without_a_direct_order_in_a_pool() -> None:
    """A pending probe explains a later EEXIST: no direct order (pending calls are left out),
    so these parts go to the search, here in worker processes (the model must pickle)."""
    events = []
    for k in range(300):
        addr = B + 4 * k * P
        events.append(ev(2 * k, nr(addr), None, k, None))
        events.append(ev(2 * k + 1, nr(addr), -mm.EEXIST, 1000 + k, 1010 + k))
    result = check_events(PARAMS, events, workers=2)
    assert result.verdict is Verdict.OK
    assert result.partitions == 300
    assert "0 by a direct order, 300 by search" in result.reason
    events[-1] = ev(9, nr(B + 4000 * P), -mm.EEXIST, 5000, 5010)  # nothing explains this one
    assert check_events(PARAMS, events, workers=2).verdict is Verdict.VIOLATION


# --- a hint within its length of 2^64 (the hint's range is clipped, the mapping is not) ------


def _top_hint_history(probe_result: int) -> tuple[list[Event], int]:
    """Task 0 maps 2 pages hinted at 2^64 - P (placed low, by the spec); task 1 then probes the
    mapping's second page."""
    params = mm.Params.reference()
    hint = mm.Op.mmap((1 << 64) - P, 2 * P, mm.PROT_READ, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS)
    placed, _ = mm.mmap(mm.State.empty(), params, hint.addr, hint.length, hint.prot, hint.flags)
    assert 0 < placed < params.task_size
    probe = mm.Op.mmap(placed + P, P, mm.PROT_READ, NR)
    result = placed + P if probe_result == 0 else probe_result
    return [Event(0, hint, placed, 0, 1), Event(1, probe, result, 2, 3)], placed


@pytest.mark.parametrize("small", [256, 0])
def test_a_mapping_hinted_near_2_64_keeps_its_whole_length(
    small: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(part, "SMALL", small)  # 0: the footprint partition is used too
    params = mm.Params.reference()
    won, _ = _top_hint_history(0)  # the probe of a mapped page "succeeded": impossible
    assert check_events(params, won, None, timeout=10).verdict is Verdict.VIOLATION
    lost, placed = _top_hint_history(-mm.EEXIST)  # the probe failed: right
    assert check_events(params, lost, None, timeout=10).verdict is Verdict.OK
    nr = lost[0].input
    assert part.created(nr, placed, params) == (placed, placed + 2 * P)
    mprotect = Event(1, mm.Op.mprotect(placed + P, P, mm.PROT_NONE), 0, 2, 3)
    assert check_events(params, [lost[0], mprotect], None, timeout=10).verdict is Verdict.OK


def test_an_unknown_verdict_shows_its_candidate_only_as_such() -> None:
    """A pending non-fixed mmap may have mapped anywhere. Within its domain the checker tries
    a complete set of placements; a pending mmap longer than that domain's depth gets only the
    spec's placement, so a failed search is UNKNOWN and its counterexample only a candidate."""
    from stress.checker import render
    from stress.checker._mm_places import MAX_DEPTH_PAGES

    params = mm.Params.reference()
    length = (MAX_DEPTH_PAGES + 1) * P
    hint = mm.Op.mmap(B, length, mm.PROT_READ, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS)
    probe = mm.Op.mmap(B, P, mm.PROT_READ, NR)
    later = mm.Op.mmap(B + P, P, mm.PROT_READ, NR)
    # The probe wins B, so the pending hint cannot have been placed there; the later probe's
    # EEXIST at B + P needs the hint placed at B + P, which the spec's placement never picks.
    events = [
        Event(0, hint, None, 0, None),
        Event(1, probe, B, 1, 2),
        Event(2, later, -mm.EEXIST, 3, 4),
    ]
    # Shorter, the same history is decided: the placement B + P is among the candidates.
    short = mm.Op.mmap(B, 2 * P, mm.PROT_READ, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS)
    decided = check_events(params, [Event(0, short, None, 0, None), *events[1:]], None, timeout=10)
    assert decided.verdict is Verdict.OK
    result = check_events(params, events, None, timeout=10)
    assert result.verdict is Verdict.UNKNOWN and "may have mapped anywhere" in result.reason
    assert result.counterexample is not None
    text = render(MmModel(params), result, None)
    assert "candidate counterexample, NOT confirmed" in text
    assert "\ncounterexample (" not in text


def test_repeated_enomem_of_a_nonfixed_mmap_with_room_is_illegal_each_time() -> None:
    """Two identical non-fixed mmaps refused with ENOMEM in an almost empty space: neither is
    possible (the second is judged from the first one's memo, so both paths are covered)."""
    params = mm.Params.reference()
    anywhere = mm.Op.mmap(0, P, mm.PROT_READ, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS)
    events = [Event(0, anywhere, -mm.ENOMEM, 0, 1), Event(1, anywhere, -mm.ENOMEM, 0, 1)]
    assert check_events(params, events, None, timeout=10).verdict is Verdict.VIOLATION
    assert len(part.partition(events, params)) == 2  # each one a part of its own
