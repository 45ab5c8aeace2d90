"""Moving time segments to one base (`_mm_shift`): the claim checked against the spec itself,
and the checker's verdicts and words with segments moved."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

import mm
from stress.checker import Event, Tuning, Verdict
from stress.checker._mm_check import check_events
from stress.checker._mm_shift import Mover, movable_span, moved_segments

P = 4096
B = 0x100000000000
RW = mm.PROT_READ | mm.PROT_WRITE
ANON = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS
SHARED = mm.MAP_SHARED | mm.MAP_ANONYMOUS
REF = mm.Params.reference()
TASK = REF.task_size
FLOOR = REF.mmap_min_addr
# windows of the space to race in and to move to: the middle, just above the floor, just
# below TASK_SIZE (16 pages each)
WINDOWS = [B, FLOOR, TASK - 16 * P]


def _ops(base: int) -> st.SearchStrategy[mm.Op]:
    addr = st.integers(0, 12).map(lambda k: base + k * P)
    length = st.sampled_from([P, 2 * P, 3 * P, P + 1, 4 * P - 1])
    prot = st.sampled_from([RW, mm.PROT_READ, mm.PROT_NONE, RW | mm.PROT_EXEC])
    flags = st.sampled_from(
        [mm.NR, mm.NR, ANON | mm.MAP_FIXED, SHARED | mm.MAP_FIXED, SHARED | mm.MAP_FIXED_NOREPLACE]
    )
    return st.one_of(
        st.builds(mm.Op.mmap, addr, length, prot, flags),
        st.builds(mm.Op.munmap, addr, length),
        st.builds(mm.Op.mprotect, addr, length, prot),
    )


def _moved_state(state: mm.State, d: int) -> mm.State:
    return mm.State.of(
        attrs.evolve(m, start=m.start + d, end=m.end + d, origin=m.origin and m.origin + d)
        for m in state.mappings
    )


@st.composite
def _runs(draw: st.DrawFn) -> tuple[mm.Params, list[mm.Op], int]:
    params = draw(
        st.sampled_from(
            [REF, mm.Params.reference(privileged=False), attrs.evolve(REF, max_map_count=3)]
        )
    )
    start, to = draw(st.sampled_from(WINDOWS)), draw(st.sampled_from(WINDOWS))
    ops = draw(st.lists(_ops(start), min_size=1, max_size=8))
    shift = draw(st.integers(-2, 2)) * P
    return params, ops, to - start + shift


@settings(max_examples=300, deadline=None)
@given(_runs())
def test_moving_movable_calls_commutes_with_the_spec(
    run: tuple[mm.Params, list[mm.Op], int],
) -> None:
    """The claim of `_mm_shift`'s docstring, on the spec (`mm.apply`): movable calls moved by
    d give the same results (a successful mmap's moved by d) and states moved by d."""
    params, ops, d = run
    moved = [attrs.evolve(op, addr=op.addr + d) for op in ops]
    spans = [movable_span(op, params) for op in ops + moved]
    if None in spans:
        return  # not movable (outside the bounds after the move): no claim
    state, there = mm.State.empty(), mm.State.empty()
    for op, op2 in zip(ops, moved, strict=True):
        result, state = mm.apply(state, params, op)
        result2, there = mm.apply(there, params, op2)
        want = result + d if op.kind == "mmap" and result >= 0 else result
        assert result2 == want, (op, result, op2, result2)
        assert there == _moved_state(state, d), (op, state, there)


def _round(task_count: int, base: int, t: int, winner: int = 0) -> list[Event]:
    probe = mm.Op.mmap(base, P, RW, mm.NR)
    events = [
        Event(k, probe, base if k == winner else -mm.EEXIST, t + k, t + 50 + k)
        for k in range(task_count)
    ]
    return [*events, Event(0, mm.Op.munmap(base, P), 0, t + 100, t + 110)]


def _rounds(n: int, bad: int | None = None) -> list[Event]:
    events: list[Event] = []
    for r in range(n):
        base = B + (r % 97) * 3 * P
        round_ = _round(4, base, 1000 * r)
        if r == bad:  # an EEXIST with nothing mapped: nobody won this round
            probes = [e.replace(output=-mm.EEXIST) if e.task == 0 else e for e in round_[:-1]]
            round_ = [*probes, round_[-1]]
        events += round_
    return events


def test_rounds_at_other_bases_share_their_moved_calls() -> None:
    events = _rounds(50)
    segments = [events[k : k + 5] for k in range(0, len(events), 5)]
    moved = moved_segments(segments, REF)
    assert moved is not None
    assert moved[0] is segments[0]  # the base: as it is
    probes = {id(seg[0].input) for seg in moved[1:]}
    unmaps = {id(seg[-1].input) for seg in moved[1:]}
    assert len(probes) == len(unmaps) == 1  # one call each, whatever the round's base
    first = segments[0][0].input.addr
    for seg, orig in zip(moved, segments, strict=True):
        assert [e.output for e in seg] == [
            first if e.output >= 0 and e.input.kind == "mmap" else e.output for e in orig
        ]
        assert [(e.task, e.call, e.ret) for e in seg] == [(e.task, e.call, e.ret) for e in orig]


def test_segments_that_cannot_move_stay_as_recorded() -> None:
    mover = Mover(REF)
    first = _round(2, B, 0)
    assert mover.move(first) is first  # it sets the base
    hint = [Event(0, mm.Op.mmap(B + P, P, RW, ANON), B + P, 10, 20)]
    moved_away = [Event(0, mm.Op.mmap(B + 4 * P, P, RW, mm.NR), B, 10, 20)]
    odd_unmap = [Event(0, mm.Op.munmap(B + 4 * P, P), 5, 10, 20)]
    unaligned = [Event(0, mm.Op.munmap(B + 4 * P + 1, P), -mm.EINVAL, 10, 20)]
    low = [Event(0, mm.Op.mmap(0, P, RW, mm.NR), -mm.EPERM, 10, 20)]
    for segment in (hint, moved_away, odd_unmap, unaligned, low):
        assert mover.move(segment) is segment
    assert mover.move(_round(2, B + 8 * P, 100)) is not None
    assert mover.move(_round(2, B + 8 * P, 100))[0].input.addr == B


def test_verdicts_are_the_same_moved_or_not() -> None:
    for bad in (None, 61):
        events = _rounds(300, bad)
        moved = check_events(REF, events)
        plain = check_events(REF, events, tuning=Tuning(move_segments=False))
        assert moved.verdict == plain.verdict
        assert moved.verdict == (Verdict.OK if bad is None else Verdict.VIOLATION)
        assert moved.partitions == plain.partitions


def test_a_violation_in_a_moved_round_is_told_with_its_own_calls() -> None:
    events = _rounds(300, bad=61)
    result = check_events(REF, events)
    assert result.verdict is Verdict.VIOLATION and result.counterexample is not None
    recorded = {id(e) for e in events}
    assert all(id(e) in recorded for e in result.counterexample.events)
    base = B + 61 * 3 * P
    assert {e.input.addr for e in result.counterexample.events} == {base}
