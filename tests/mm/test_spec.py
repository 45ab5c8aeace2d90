"""Unit tests of the sequential model: states, placement, observed steps, names."""

from __future__ import annotations

import pytest

import mm
from mm import NR, Mapping, Op, Params, State

P = 4096
B = 0x100000000000
PA = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS
RW = mm.PROT_READ | mm.PROT_WRITE
REF = Params.reference()


def m(start: int, end: int, prot: int = RW, flags: int = PA, origin: int = 0) -> Mapping:
    return Mapping(start, end, prot, flags, origin)


# --- State -----------------------------------------------------------------------------------


def test_adjacent_compatible_mappings_merge() -> None:
    s = State.of([m(B + P, B + 2 * P), m(B, B + P)])
    assert s.mappings == (m(B, B + 2 * P),)


def test_incompatible_neighbours_stay_apart() -> None:
    s = State.of([m(B, B + P), m(B + P, B + 2 * P, prot=mm.PROT_READ)])
    assert len(s) == 2
    shared = State.of(
        [
            m(B, B + P, flags=mm.MAP_SHARED, origin=1),
            m(B + P, B + 2 * P, flags=mm.MAP_SHARED, origin=2),
        ]
    )
    assert len(shared) == 2  # two different shared objects never merge


def test_equal_page_maps_are_equal_and_hash_equal() -> None:
    built_in_pieces = State.empty().with_mapping(m(B, B + P)).with_mapping(m(B + P, B + 3 * P))
    in_one = State.of([m(B, B + 3 * P)])
    assert built_in_pieces == in_one
    assert hash(built_in_pieces) == hash(in_one)
    assert len({built_in_pieces, in_one}) == 1
    assert in_one != State.of([m(B, B + 2 * P)])


def test_without_trims_and_splits() -> None:
    s = State.of([m(B, B + 4 * P)])
    assert s.without(B + P, B + 2 * P).mappings == (m(B, B + P), m(B + 2 * P, B + 4 * P))
    assert s.without(B - P, B + P).mappings == (m(B + P, B + 4 * P),)
    assert s.without(B + 4 * P, B + 8 * P) is s  # nothing there: the same value


def test_with_mapping_replaces_what_was_there() -> None:
    s = State.of([m(B, B + 4 * P)]).with_mapping(m(B + P, B + 2 * P, prot=0))
    assert s.mappings == (m(B, B + P), m(B + P, B + 2 * P, prot=0), m(B + 2 * P, B + 4 * P))
    assert s.at(B + P) == m(B + P, B + 2 * P, prot=0)
    assert s.at(B + 4 * P) is None


def test_overlapping_and_intersects_ignore_touching() -> None:
    s = State.of([m(B + P, B + 2 * P), m(B + 3 * P, B + 4 * P, prot=0)])
    assert s.overlapping(B, B + P) == []
    assert not s.intersects(B, B + P) and not s.intersects(B + 2 * P, B + 3 * P)
    assert [x.start for x in s.overlapping(B, B + 5 * P)] == [B + P, B + 3 * P]
    assert s.intersects(B + 3 * P + 1, B + 3 * P + 2)


def test_pages() -> None:
    s = State.of([m(B, B + 2 * P, prot=1)])
    assert list(s.pages(P)) == [(B, 1), (B + P, 1)]


# --- placement -------------------------------------------------------------------------------


def hint(addr: int, length: int = P) -> Op:
    return Op.mmap(addr, length, RW, PA)


def test_free_hint_is_taken_and_must_be() -> None:
    s = State.of([m(B, B + P)])
    op = hint(B + 2 * P)
    result, _ = mm.apply(s, REF, op)
    assert result == B + 2 * P
    assert mm.is_allowed_placement(s, REF, op, B + 2 * P)
    assert not mm.is_allowed_placement(s, REF, op, B + 8 * P)  # the hint was free


def test_taken_hint_allows_any_free_aligned_range() -> None:
    s = State.of([m(B, B + P)])
    op = hint(B)
    result, after = mm.apply(s, REF, op)
    assert result != B and result >= 0 and after.at(result) is not None
    assert mm.is_allowed_placement(s, REF, op, B + P)
    assert mm.is_allowed_placement(s, REF, op, 0x7F0000000000 - P)
    assert not mm.is_allowed_placement(s, REF, op, B)  # on top of the mapping
    assert not mm.is_allowed_placement(s, REF, op, B - P // 2 + P)  # unaligned
    assert not mm.is_allowed_placement(s, REF, op, REF.mmap_min_addr - P)  # below the floor
    assert not mm.is_allowed_placement(s, REF, op, REF.task_size)  # beyond user space
    assert not mm.is_allowed_placement(s, REF, Op.mmap(B, P, RW, NR), B + P)  # fixed


def test_low_hint_is_raised_to_mmap_min_addr() -> None:
    result, _ = mm.apply(State.empty(), REF, hint(0x1000))
    assert result == REF.mmap_min_addr == 0x10000


def test_guard_gap_below_a_stack() -> None:
    stack = m(B + 300 * P, B + 304 * P, flags=PA | mm.MAP_GROWSDOWN)
    s = State.of([stack])
    assert mm.apply(s, REF, hint(B + 43 * P))[0] == B + 43 * P  # ends 256 pages below
    assert mm.apply(s, REF, hint(B + 44 * P))[0] != B + 44 * P  # inside the gap
    assert mm.apply(s, REF, Op.mmap(B + 299 * P, P, RW, NR))[0] == B + 299 * P  # NR ignores it


def test_no_room_is_enomem() -> None:
    tiny = Params(task_size=0x40000, lsm_mmap_min_addr=0x10000, mmap_base=0x40000)
    full = State.of([m(0x10000, 0x40000)])
    assert mm.apply(full, tiny, hint(0))[0] == -mm.ENOMEM


# --- step_observed ---------------------------------------------------------------------------


def test_step_observed_accepts_the_specified_result_only() -> None:
    s = State.of([m(B, B + P)])
    op = Op.mmap(B, P, RW, NR)
    assert mm.step_observed(s, REF, op, -mm.EEXIST) == s
    assert mm.step_observed(s, REF, op, B) is None
    assert mm.step_observed(s, REF, Op.munmap(B, P), 0) == State.empty()
    assert mm.step_observed(s, REF, Op.munmap(B, P), -mm.EINVAL) is None


def test_step_observed_follows_an_allowed_placement() -> None:
    s = State.of([m(B, B + P)])
    op = hint(B)
    after = mm.step_observed(s, REF, op, B + 5 * P)
    assert after == State.of([m(B, B + P), m(B + 5 * P, B + 6 * P)])
    assert mm.step_observed(s, REF, op, B) is None
    assert mm.step_observed(s, REF, op, -mm.ENOMEM) is None


def test_mprotect_partial_effect_on_a_hole() -> None:
    s = State.of([m(B, B + P), m(B + 2 * P, B + 3 * P)])
    result, after = mm.mprotect(s, REF, B, 3 * P, mm.PROT_READ)
    assert result == -mm.ENOMEM
    assert after == State.of([m(B, B + P, prot=1), m(B + 2 * P, B + 3 * P)])  # rule 7


# --- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "result", "text"),
    [
        ("mmap", B, "0x100000000000"),
        ("munmap", 0, "0"),
        ("mmap", -17, "EEXIST"),
        ("mprotect", -12, "ENOMEM"),
    ],
)
def test_format_and_parse_result(kind: str, result: int, text: str) -> None:
    assert mm.format_result(kind, result) == text
    assert mm.parse_result(kind, text) == result


def test_prot_and_flag_names_round_trip() -> None:
    assert mm.parse_prot("READ|WRITE") == RW == mm.parse_prot("PROT_READ|prot_write")
    assert mm.parse_prot("NONE") == 0 and mm.format_prot(0) == "NONE"
    assert mm.format_prot(RW | 0x10) == "READ|WRITE|0x10"
    flags = mm.parse_flags("PRIVATE|ANONYMOUS|FIXED_NOREPLACE")
    assert flags == NR == 0x100022
    assert mm.parse_flags(mm.format_flags(flags)) == flags
    assert mm.parse_flags("0x22") == PA
    with pytest.raises(ValueError, match="unknown flag"):
        mm.parse_flags("PRIVATE|NOPE")
    assert mm.errno_name(-mm.EEXIST) == "EEXIST" and mm.errno_value("EPERM") == mm.EPERM


def test_op_text() -> None:
    assert str(Op.munmap(B, P)) == "munmap(0x100000000000, 0x1000)"
    assert "FIXED_NOREPLACE" in str(Op.mmap(B, P, RW, NR))
    assert mm.is_fixed(Op.mmap(B, P, RW, NR)) and mm.is_probe(Op.mmap(B, P, RW, NR))
    assert mm.is_nonfixed(hint(B)) and not mm.is_fixed(hint(B))
    assert not mm.is_nonfixed(Op.munmap(B, P)) and not mm.is_fixed(Op.munmap(B, P))


# --- the mapping-count limit (rules found against the kernel: tests/mm/test_map_count_limit.py) --


def test_splits_are_refused_at_the_map_count_limit() -> None:
    s = State.of([m(B, B + 3 * P), m(B + 4 * P, B + 5 * P, prot=1)])  # two mappings
    at_limit = Params(max_map_count=2)
    one_below = Params(max_map_count=3)
    middle = Op.mprotect(B + P, P, 1)  # needs two splits
    head = Op.mprotect(B, P, 1)  # needs one
    assert mm.apply(s, at_limit, head)[0] == -mm.ENOMEM
    assert mm.apply(s, one_below, head)[0] == 0
    assert mm.apply(s, one_below, middle)[0] == -mm.ENOMEM  # the second split fails
    assert mm.apply(s, Params(max_map_count=4), middle)[0] == 0
    assert mm.apply(s, at_limit, Op.mprotect(B, P, RW))[0] == 0  # unchanged: no split
    merging = Op.mprotect(B + 2 * P, P, 1)  # tail piece, next mapping not adjacent: a split
    assert mm.apply(s, at_limit, merging)[0] == -mm.ENOMEM
    fixed_inside = Op.mmap(B + P, P, 1, PA | mm.MAP_FIXED)
    assert mm.apply(s, at_limit, fixed_inside)[0] == -mm.ENOMEM
    assert mm.apply(s, one_below, fixed_inside)[0] == B + P
    assert mm.apply(s, at_limit, Op.munmap(B + P, P))[0] == -mm.ENOMEM
    assert mm.apply(s, at_limit, Op.munmap(B, P))[0] == 0  # one-sided: allowed
