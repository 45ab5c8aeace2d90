"""Checking an mm history: the race pass first, then the engine's search.

`check_events` is what `check_history` and `mmrace check` run. When the race pass finds a
definite double win, only the round that holds it is searched: the race pass's argument holds
for that round's sub-history as well (fewer munmaps can only remove explanations), so the
search's counterexample on it is a true one, and the whole history violates by the race pass's
argument. Otherwise the whole history is searched within the time budget.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import attrs

import mm
from stress.checker import CheckResult, Event, Verdict, check
from stress.checker.mm_model import MmModel
from stress.checker.mm_partition import is_nonfixed_mmap, span
from stress.checker.race_pass import race_pass


def check_events(
    params: mm.Params,
    events: Sequence[Event],
    rounds: Sequence[int] | None = None,
    *,
    timeout: float | None = None,
    workers: int | None = None,
) -> CheckResult:
    """Is the history linearizable with respect to the `mm` spec? (see the module docstring)."""
    start = time.monotonic()
    model = MmModel(params)
    note = ""
    findings = race_pass(events, params, rounds)
    if findings:
        finding = findings[0]
        sub = _round_of(events, rounds, finding.round, finding.overlap, params)
        confirmed = check(model, sub, timeout=timeout, workers=1)
        if confirmed.verdict is Verdict.VIOLATION:
            return CheckResult(
                verdict=Verdict.VIOLATION,
                reason=f"{finding.message} (the search confirms it)",
                operations=len(events),
                partitions=confirmed.partitions,
                partitions_checked=confirmed.partitions_checked,
                seconds=time.monotonic() - start,
                counterexample=confirmed.counterexample,
            )
        note = f"; the race pass flagged {finding.message!r} but the search did not confirm it"
    budget = None if timeout is None else max(0.0, timeout - (time.monotonic() - start))
    result = check(model, events, timeout=budget, workers=workers)
    result = attrs.evolve(result, seconds=time.monotonic() - start, reason=result.reason + note)
    if result.verdict is Verdict.VIOLATION and result.counterexample is not None:
        guess = [
            e for e in result.counterexample.events if e.ret is None and is_nonfixed_mmap(e.input)
        ]
        if guess:
            return attrs.evolve(
                result,
                verdict=Verdict.UNKNOWN,
                reason=(
                    f"{result.reason}, but it holds a non-fixed mmap with no response (task "
                    f"{guess[0].task}) that may have mapped anywhere; the search only tried its "
                    f"hint or the spec's placement"
                ),
            )
    return result


def _round_of(
    events: Sequence[Event],
    rounds: Sequence[int] | None,
    rnd: int | None,
    overlap: tuple[int, int],
    params: mm.Params,
) -> list[Event]:
    """The events of round ``rnd`` (all events when rounds are unknown) that name pages of the
    overlap, which is what the counterexample needs."""
    lo, hi = overlap
    chosen = []
    for k, e in enumerate(events):
        if rounds is not None and rounds[k] != rnd:
            continue
        a, b = span(e.input, params)
        if e.input.kind == "mmap" and is_nonfixed_mmap(e.input):
            if e.ret is None or e.output < 0:
                continue
            a, b = e.output, e.output + (b - a)
        if a < hi and lo < b:
            chosen.append(e)
    return chosen
