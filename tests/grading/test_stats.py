"""The race aggregates of `RaceStats`: what counts as a win, calls in flight, the winner's rank,
latency over time, and `merge` (two halves merged equal the whole fed in order)."""

from __future__ import annotations

import mm
from stress.grading import RaceStats, RoundResult
from stress.grading._stats import TIME_BINS, TimeBins, in_flight
from stress.history import Operation

P = 4096
B = 0x100000000000
EEXIST = -mm.EEXIST
HINT = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS


def probe(task: int, result: int | None, call: int, ret: int | None) -> Operation:
    return Operation(task, mm.Op.mmap(B, P, mm.PROT_READ, mm.NR), result, call, ret)


def hint(task: int, result: int, call: int, ret: int) -> Operation:
    return Operation(task, mm.Op.mmap(B, P, mm.PROT_READ, HINT), result, call, ret)


def round_of(index: int, *calls: Operation) -> RoundResult:
    return RoundResult(index, len({c.task for c in calls}), calls)


def test_only_a_probe_that_got_its_address_wins() -> None:
    stats = RaceStats(4, P)
    # flag ignored: task 1's probe was given another address (a hint fallback); task 2's
    # non-fixed mmap landed elsewhere, task 3's at its hint: none of them is a win
    stats.add(
        round_of(
            0,
            probe(0, B, 0, 10),
            probe(1, B + 8 * P, 1, 11),
            hint(2, B + 16 * P, 2, 12),
            hint(3, B, 3, 13),
        )
    )
    assert stats.wins == [1, 0, 0, 0]
    assert stats.winner_rank == {0: 1}
    data = stats.to_json()
    assert data["wins"] == [1, 0, 0, 0] and data["winner_rank"] == [[0, 1]]


def test_calls_in_flight_at_once() -> None:
    assert in_flight([probe(0, B, 0, 10), probe(1, EEXIST, 5, 15), probe(2, EEXIST, 12, 20)]) == 2
    assert in_flight([probe(0, B, 0, 10), probe(1, EEXIST, 10, 20)]) == 1  # touching: one after
    assert in_flight([probe(0, B, 0, 10), probe(1, None, 1, None), probe(2, EEXIST, 30, 31)]) == 2
    stats = RaceStats(3, P)
    stats.add(round_of(0, probe(0, B, 0, 10), probe(1, EEXIST, 1, 11), probe(2, EEXIST, 2, 12)))
    stats.add(round_of(1, probe(0, B, 0, 1), probe(1, EEXIST, 2, 3), probe(2, EEXIST, 4, 5)))
    assert stats.to_json()["in_flight"] == [[1, 1], [3, 1]]


def test_winner_rank_by_call_start() -> None:
    stats = RaceStats(3, P)
    # task 2 started last and won
    stats.add(round_of(0, probe(0, EEXIST, 0, 9), probe(1, EEXIST, 1, 9), probe(2, B, 2, 5)))
    assert stats.winner_rank == {2: 1}


def test_latency_over_time_bins_stay_bounded() -> None:
    bins = TimeBins()
    for r in range(1000):
        bins.add(r, r % 7 + 1)
    out = bins.to_json()
    assert len(out["bins"]) <= TIME_BINS
    assert out["bin_rounds"] >= 1000 // TIME_BINS
    assert sum(b["calls"] for b in out["bins"]) == 1000
    assert max(b["max"] for b in out["bins"]) == 7


def _rounds(n: int) -> list[RoundResult]:
    out = []
    for r in range(n):
        winner = r % 3
        calls = [
            probe(t, B if t == winner else EEXIST, 10 * t + r % 5, 10 * t + 40 + r % 11)
            for t in range(3)
        ]
        out.append(round_of(r, *calls))
    return out


def test_merge_equals_feeding_in_order() -> None:
    rounds = _rounds(300)
    whole, first, second = RaceStats(3, P), RaceStats(3, P), RaceStats(3, P)
    for r in rounds:
        whole.add(r)
    for r in rounds[:120]:
        first.add(r)
    for r in rounds[120:]:
        second.add(r)
    first.merge(second)
    a, b = whole.to_json(), first.to_json()
    for key in ("wins", "probes", "lost", "calls", "in_flight", "winner_rank"):
        assert a[key] == b[key], key
    assert a["latency_over_time"] == b["latency_over_time"]
    assert sorted(a["latency"]["won"]) == sorted(b["latency"]["won"])  # under the sample size
    assert first.fastest == whole.fastest


def test_merge_keeps_reservoirs_bounded() -> None:
    from stress.grading._stats import SAMPLE

    big = RaceStats(3, P)
    for r in _rounds(SAMPLE):  # SAMPLE EEXIST x2 per round: past the sample size
        big.add(r)
    other = RaceStats(3, P)
    for r in _rounds(SAMPLE):
        other.add(r)
    big.merge(other)
    assert len(big.samples["EEXIST"]) == SAMPLE
    assert big.calls["EEXIST"] == 4 * SAMPLE
