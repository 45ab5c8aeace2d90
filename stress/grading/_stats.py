"""What the race did, in aggregates the report draws: wins, probes, latencies, a sample round.

Fed round by round with graded `RoundResult`s, in bounded memory: counts are exact, latencies
are kept as a seeded reservoir sample per outcome class (exact for runs with fewer calls), and
one round's calls are kept for a timeline. A call *won* when its mmap returned the address it
asked for (the strict reading's ``winners``: a hint fallback is no win).
"""

from __future__ import annotations

import random
from typing import Any

import attrs

import mm
from stress.errors import counted
from stress.grading._outcomes import RoundResult, outcome, overlapped
from stress.history import Operation

WON, EEXIST, OTHER = "won", "EEXIST", "other"
CLASSES = (WON, EEXIST, OTHER)
SAMPLE = 5000  # latencies kept per class
TIMELINE_CALLS = 256  # calls of the sample round kept for its timeline


def call_class(call: Operation, page_size: int) -> str | None:
    """won / EEXIST / other, None for a pending call."""
    found = outcome(call, page_size, compat=False)
    if found == "pending":
        return None
    if found == "winners":
        return WON
    return EEXIST if found == "eexist" else OTHER


def describe(call: Operation) -> str:
    """A short label: ``mmap 0x100000000000+0x1000 → EEXIST``."""
    op = call.op
    result = "pending" if call.result is None else mm.format_result(op.kind, call.result)
    return f"{op.kind} {op.addr:#x}+{op.length:#x} → {result}"


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
    sample_round: dict[str, Any] | None = None
    _fallback: dict[str, Any] | None = None
    _random: random.Random = attrs.Factory(lambda: random.Random(0))

    def __attrs_post_init__(self) -> None:
        if not self.wins:
            self.wins = [0] * self.tasks

    def add(self, result: RoundResult) -> None:
        """Count one round's racing calls."""
        page = self.page_size
        for call in result.calls:
            kind = call.op.kind
            cls = call_class(call, page)
            if mm.is_probe(call.op):
                self.probes += 1
                self.lost += call.result == -mm.EEXIST
            if cls is None or call.ret is None:
                continue
            if cls == WON and 0 <= call.task < self.tasks:
                self.wins[call.task] += 1
            latency = call.ret - call.call
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
        if self.sample_round is None and result.calls:
            if overlapped(result.calls):
                self.sample_round = _timeline(result, "first round that overlapped", page)
            elif self._fallback is None:
                self._fallback = _timeline(result, "", page)

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
            "sample_round": self.sample_round or self._fallback,
        }


def _timeline(result: RoundResult, why: str, page_size: int) -> dict[str, Any]:
    calls = sorted(result.calls, key=lambda c: (c.call, c.task))
    shown = calls[:TIMELINE_CALLS]
    title = f"Round {result.round}: racing calls" + (f" ({why})" if why else "")
    if len(shown) < len(calls):
        title += f", first {len(shown)} of {counted(len(calls), 'call')}"
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
