"""What the race did, in aggregates the report draws: wins, probes, latencies, a sample round.

Fed round by round with graded `RoundResult`s, in bounded memory: counts are exact, latencies
are kept as a seeded reservoir sample per outcome class (exact for runs with fewer calls), and
one round's calls are kept for a timeline. A call *won* when it was a MAP_FIXED_NOREPLACE probe
and its mmap returned the address it asked for (the strict reading's ``winners``): a hint
fallback (a probe given another address) and a non-fixed mmap, wherever it landed, are no wins.

Besides: how many calls were in flight at once per round (a histogram), the winner's rank among
the round's callers by call start (does the first caller win?), and latency over time (mean and
max per bin of rounds). Every aggregate is mergeable (`merge`), so a judge that streams rounds,
or one that works in parts, adds them up.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import attrs

import mm
from stress.grading._outcomes import RoundResult, outcome, overlapped
from stress.history import Operation

WON, EEXIST, OTHER = "won", "EEXIST", "other"
CLASSES = (WON, EEXIST, OTHER)
SAMPLE = 5000  # latencies kept per class
TIMELINE_CALLS = 256  # calls of the sample round kept for its timeline
TIME_BINS = 64  # latency-over-time bins at most (their width in rounds doubles as needed)


def call_class(call: Operation, page_size: int) -> str | None:
    """won / EEXIST / other, None for a pending call (won: a probe that got its address)."""
    found = outcome(call, page_size, compat=False)
    if found == "pending":
        return None
    if found == "winners" and mm.is_probe(call.op):
        return WON
    return EEXIST if found == "eexist" else OTHER


def describe(call: Operation) -> str:
    """A short label: ``mmap 0x100000000000+0x1000 → EEXIST``."""
    op = call.op
    result = "pending" if call.result is None else mm.format_result(op.kind, call.result)
    return f"{op.kind} {op.addr:#x}+{op.length:#x} → {result}"


def in_flight(calls: tuple[Operation, ...] | list[Operation]) -> int:
    """The most calls in flight at once (a pending call never ends; touching calls do not
    overlap: a response at t ends before an invocation at t)."""
    forever = 1 << 63
    events = sorted(
        [(c.call, 1) for c in calls] + [(forever if c.ret is None else c.ret, -1) for c in calls]
    )  # at equal stamps a response (-1) sorts before an invocation (+1)
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


@attrs.define
class TimeBins:
    """Latency of completed racing calls over the run: per bin of ``width`` rounds, the calls'
    count, latency sum and maximum. At most `TIME_BINS` bins: the width doubles (and bins pair
    up) when a round falls past the last, so memory stays bounded at any run length."""

    width: int = 1
    bins: dict[int, list[int]] = attrs.Factory(dict)  # bin index -> [count, sum, max]

    def add(self, round_index: int, latency: int) -> None:
        while round_index // self.width >= TIME_BINS:
            self._widen()
        slot = self.bins.setdefault(round_index // self.width, [0, 0, 0])
        slot[0] += 1
        slot[1] += latency
        slot[2] = max(slot[2], latency)

    def _widen(self) -> None:
        merged: dict[int, list[int]] = {}
        for index, (n, total, top) in self.bins.items():
            slot = merged.setdefault(index // 2, [0, 0, 0])
            slot[0] += n
            slot[1] += total
            slot[2] = max(slot[2], top)
        self.bins, self.width = merged, self.width * 2

    def merge(self, other: TimeBins) -> None:
        """Add ``other``'s bins (rebinned to the wider of the two widths)."""
        while self.width < other.width:
            self._widen()
        for index, (n, total, top) in other.bins.items():
            first = index * other.width
            while first // self.width >= TIME_BINS:
                self._widen()
            slot = self.bins.setdefault(first // self.width, [0, 0, 0])
            slot[0] += n
            slot[1] += total
            slot[2] = max(slot[2], top)

    def to_json(self) -> dict[str, Any]:
        return {
            "bin_rounds": self.width,
            "bins": [
                {"first_round": i * self.width, "calls": n, "mean": total / n, "max": top}
                for i, (n, total, top) in sorted(self.bins.items())
                if n
            ],
        }


@attrs.define(eq=False)
class RaceStats:
    """Aggregates of the racing calls of a run (see the module docstring)."""

    tasks: int
    page_size: int
    wins: list[int] = attrs.Factory(list)
    probes: int = 0
    lost: int = 0
    calls: dict[str, int] = attrs.Factory(lambda: dict.fromkeys(CLASSES, 0))
    # per class: a reservoir of (kind, latency)
    samples: dict[str, list[tuple[str, int]]] = attrs.Factory(lambda: {c: [] for c in CLASSES})
    # the fastest latency per (kind, class): the uncontended service time
    fastest: dict[tuple[str, str], int] = attrs.Factory(dict)
    # rounds by the most calls in flight at once
    in_flight: Counter[int] = attrs.Factory(Counter)
    # winning probes by their rank (0: first) among the round's callers by call start
    winner_rank: Counter[int] = attrs.Factory(Counter)
    over_time: TimeBins = attrs.Factory(TimeBins)
    sample_round: dict[str, Any] | None = None
    _fallback: dict[str, Any] | None = None
    _random: random.Random = attrs.Factory(lambda: random.Random(0))

    def __attrs_post_init__(self) -> None:
        if not self.wins:
            self.wins = [0] * self.tasks

    def add(self, result: RoundResult) -> None:
        """Count one round's racing calls."""
        page = self.page_size
        by_start = sorted(range(len(result.calls)), key=lambda i: (result.calls[i].call, i))
        rank = {index: position for position, index in enumerate(by_start)}
        for i, call in enumerate(result.calls):
            kind = call.op.kind
            cls = call_class(call, page)
            if mm.is_probe(call.op):
                self.probes += 1
                self.lost += call.result == -mm.EEXIST
            if cls is None or call.ret is None:
                continue
            if cls == WON:
                if 0 <= call.task < self.tasks:
                    self.wins[call.task] += 1
                self.winner_rank[rank[i]] += 1
            latency = call.ret - call.call
            self.over_time.add(result.round, latency)
            key = (kind, cls)
            if latency < self.fastest.get(key, latency + 1):
                self.fastest[key] = latency
            seen = self.calls[cls] = self.calls[cls] + 1
            kept = self.samples[cls]
            if len(kept) < SAMPLE:
                kept.append((kind, latency))
            else:
                slot = self._random.randrange(seen)
                if slot < SAMPLE:
                    kept[slot] = (kind, latency)
        if result.calls:
            self.in_flight[in_flight(result.calls)] += 1
        if self.sample_round is None and result.calls:
            if overlapped(result.calls):
                self.sample_round = _timeline(result, "first round that overlapped", page)
            elif self._fallback is None:
                self._fallback = _timeline(result, "", page)

    def merge(self, other: RaceStats) -> None:
        """Add ``other``'s aggregates to these (rounds judged elsewhere, e.g. in parts).

        Counts add up exactly; the latency reservoirs are combined in proportion to the calls
        each side saw (a uniform sample of the union, as if fed one after the other)."""
        if len(other.wins) > len(self.wins):
            self.wins += [0] * (len(other.wins) - len(self.wins))
        self.tasks = max(self.tasks, other.tasks)
        for task, n in enumerate(other.wins):
            self.wins[task] += n
        self.probes += other.probes
        self.lost += other.lost
        for cls in CLASSES:
            mine, theirs = self.samples[cls], other.samples[cls]
            n_mine, n_theirs = self.calls[cls], other.calls[cls]
            if len(mine) + len(theirs) <= SAMPLE:
                self.samples[cls] = mine + theirs
            else:
                keep = round(SAMPLE * n_mine / max(n_mine + n_theirs, 1))
                keep = min(keep, len(mine))
                take = min(SAMPLE - keep, len(theirs))
                self.samples[cls] = self._random.sample(mine, keep) + self._random.sample(
                    theirs, take
                )
            self.calls[cls] = n_mine + n_theirs
        for key, latency in other.fastest.items():
            self.fastest[key] = min(latency, self.fastest.get(key, latency))
        self.in_flight.update(other.in_flight)
        self.winner_rank.update(other.winner_rank)
        self.over_time.merge(other.over_time)
        if self.sample_round is None:
            self.sample_round = other.sample_round
        if self._fallback is None:
            self._fallback = other._fallback

    def to_json(self) -> dict[str, Any]:
        latency = {c: [lat for _, lat in self.samples[c]] for c in CLASSES}
        waits = [lat - self.fastest[(kind, c)] for c in CLASSES for kind, lat in self.samples[c]]
        return {
            "tasks": self.tasks,
            "wins": list(self.wins),
            "probes": self.probes,
            "lost": self.lost,
            "calls": dict(self.calls),
            "latency": latency,
            "latency_sampled": any(self.calls[c] > SAMPLE for c in CLASSES),
            "lock_waits": waits,
            "in_flight": [[k, n] for k, n in sorted(self.in_flight.items())],
            "winner_rank": [[k, n] for k, n in sorted(self.winner_rank.items())],
            "latency_over_time": self.over_time.to_json(),
            "sample_round": self.sample_round or self._fallback,
        }


def _timeline(result: RoundResult, why: str, page_size: int) -> dict[str, Any]:
    calls = sorted(result.calls, key=lambda c: (c.call, c.task))
    shown = calls[:TIMELINE_CALLS]
    title = f"Round {result.round}: racing calls" + (f" ({why})" if why else "")
    if len(shown) < len(calls):
        title += f", first {len(shown)} of {len(calls)} calls"
    return {
        "round": result.round,
        "title": title,
        "calls": [
            {
                "task": c.task,
                "label": describe(c),
                "call": c.call,
                "ret": c.ret,
                "outcome": call_class(c, page_size) or "",
            }
            for c in shown
        ],
    }
