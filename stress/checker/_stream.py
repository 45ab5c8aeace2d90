"""Checking a history as a stream, in memory bounded by its largest segment.

The calls are fed in the order of the file (`StreamCheck.add`) and, at *candidate points*
(after a round record, or every few thousand calls of a file without round records), the
calls not yet checked are cut at clean cuts: the time cuts of `_mm_partition.time_segments`,
the same code the whole-history check partitions with, so a segment here is exactly a time
segment there. Every segment but the last is complete (a later call starts after all of its
calls returned, and its trailing munmaps empty what it mapped: the next segment starts from the
empty address space, the state the whole-history check also starts each time segment from).
Complete segments are checked in batches with `check_events` and then dropped; only the counts,
the first violation and the first UNKNOWN are kept.

The history is linearizable iff every time segment is (the proof in `_mm_partition`), so the
combined verdict is the whole-history one: VIOLATION when a batch has one, else UNKNOWN when a
batch could not be judged, else OK.

A file whose lines are far out of call order may put a call before a cut already checked; then
`OutOfOrder` is raised and the caller checks the file whole instead (the harness's histories
are written round after round and never do this).
"""

from __future__ import annotations

import time

import attrs

import mm
from stress.checker._mm_check import Tuning, check_events
from stress.checker._mm_partition import time_segments
from stress.checker._types import CheckResult, Event, Verdict

BATCH_EVENTS = 20_000  # complete segments are checked together once this many are ready
CUT_EVENTS = 4096  # look for cuts once this many calls are held (fewer, longer cut passes)
LIVE_SECONDS = 0.2  # with ``live``: cut and check what is ready at least this often


class OutOfOrder(Exception):
    """A call starts before a cut that was already checked: the stream cannot be cut there."""


@attrs.define(eq=False)
class StreamCheck:
    """Check a history fed call by call (see the module docstring).

    ``timeout`` is the budget of the whole check, the time spent checking (each batch gets
    what is left; the time spent waiting for calls does not count); ``live``
    checks ready segments at least every `LIVE_SECONDS` instead of waiting for a full batch.
    After the first violation nothing more is searched (the verdict is settled).
    """

    params: mm.Params
    timeout: float | None = None
    batch: int = BATCH_EVENTS
    live: bool = False
    tuning: Tuning = attrs.Factory(Tuning)
    workers: int | None = None
    operations: int = 0  # calls checked
    segments: int = 0  # complete segments checked
    batches: int = 0
    partitions: int = 0
    partitions_checked: int = 0
    largest: int = 0  # calls of the largest segment
    last_round: int = -1  # the highest round whose calls were all checked
    violation: CheckResult | None = None
    violation_round: int | None = None  # the last round of the violation's calls
    unknown: CheckResult | None = None
    repeated: int = 0  # segments counted as repeats of one judged linearizable (`_fast`)
    repeated_operations: int = 0
    _buffer: list[Event] = attrs.Factory(list)
    _round_of: dict[int, int] = attrs.Factory(dict)  # id(event) -> its round
    _ready: list[list[Event]] = attrs.Factory(list)
    _ready_calls: int = 0
    _committed: int = -1  # the latest return of a checked call
    _retry_at: int = 0  # no cut found: try again when the buffer is this long
    spent: float = 0.0  # seconds spent checking
    _last_check: float = attrs.Factory(time.monotonic)

    @property
    def verdict(self) -> Verdict:
        """The verdict so far (of the calls checked)."""
        if self.violation is not None:
            return Verdict.VIOLATION
        return Verdict.UNKNOWN if self.unknown is not None else Verdict.OK

    @property
    def held(self) -> int:
        """Calls read but not checked yet."""
        return len(self._buffer) + self._ready_calls

    def add(self, event: Event, round_index: int = 0) -> None:
        if event.call <= self._committed:
            raise OutOfOrder(
                f"a call at {event.call} starts before the cut at {self._committed} already checked"
            )
        self._buffer.append(event)
        self._round_of[id(event)] = round_index

    def point(self) -> None:
        """A candidate point: cut off the complete segments, check them when enough are ready."""
        buffer = self._buffer
        due = self.live and time.monotonic() - self._last_check >= LIVE_SECONDS
        if len(buffer) < max(self._retry_at, 2) or (len(buffer) < CUT_EVENTS and not due):
            self._maybe_check()
            return
        segments = time_segments(buffer, self.params)
        keep = segments.pop()
        if segments:
            self._take(segments)
            self._retry_at = 0
        else:  # one segment so far: look again when it has doubled (linear time in all)
            self._retry_at = 2 * len(buffer)
        self._buffer = keep
        self._maybe_check()

    def finish(self, complete: bool = True) -> None:
        """The end of the history: the calls held form the last segment (``complete``), or are
        dropped unchecked (a truncated history: its last segment may lack calls)."""
        if self._buffer:
            segments = time_segments(self._buffer, self.params)
            if not complete:
                segments.pop()  # the last one may lack calls: not judged
            self._take(segments)
        self._buffer = []
        self._check()
        self._round_of.clear()

    def check_segments(self, segments: list[list[Event]], rounds: list[int]) -> bool:
        """Complete segments cut already (by the fast scan, at the cuts `point` makes), with
        each call's round in order, checked now. True: all of them are linearizable."""
        round_of = self._round_of
        k = 0
        for segment in segments:
            for e in segment:
                round_of[id(e)] = rounds[k]
                k += 1
        self._take(segments)
        return self._check() is Verdict.OK

    def count_repeats(self, segments: int, operations: int, largest: int) -> None:
        """Segments the fast scan counted as repeats of one judged linearizable."""
        self.segments += segments
        self.operations += operations
        self.repeated += segments
        self.repeated_operations += operations
        self.largest = max(self.largest, largest)

    def _take(self, segments: list[list[Event]]) -> None:
        for segment in segments:
            self.largest = max(self.largest, len(segment))
            self._ready_calls += len(segment)
            for e in segment:
                if e.ret is not None and e.ret > self._committed:
                    self._committed = e.ret
        self._ready.extend(segments)

    def _maybe_check(self) -> None:
        if self._ready_calls >= self.batch or (
            self.live and self._ready and time.monotonic() - self._last_check >= LIVE_SECONDS
        ):
            self._check()

    def _check(self) -> Verdict | None:
        """Check the ready segments: their verdict (None: nothing searched)."""
        self._last_check = time.monotonic()
        if not self._ready:
            return None
        segments, self._ready, self._ready_calls = self._ready, [], 0
        events = [e for segment in segments for e in segment]
        round_of = self._round_of
        rounds = [round_of.pop(id(e)) for e in events]
        self.segments += len(segments)
        self.operations += len(events)
        self.last_round = max(self.last_round, max(rounds))
        if self.violation is not None:
            return None  # settled: count the calls, search no more
        self.batches += 1
        left = None
        if self.timeout is not None:
            left = max(0.0, self.timeout - self.spent)
        result = check_events(
            self.params,
            events,
            rounds,
            timeout=left,
            workers=self.workers,
            tuning=self.tuning,
            segments=segments,  # cut already: the same time segments
        )
        self.spent += time.monotonic() - self._last_check
        self.partitions += result.partitions
        self.partitions_checked += result.partitions_checked
        if result.verdict is Verdict.VIOLATION:
            self.violation = result
            cx = result.counterexample
            of = {id(e): r for e, r in zip(events, rounds, strict=True)}
            found = [of[id(e)] for e in (cx.events if cx else ()) if id(e) in of]
            self.violation_round = max(found) if found else max(rounds)
        elif result.verdict is not Verdict.OK and self.unknown is None:
            self.unknown = result
        return result.verdict

    def result(self, truncated: str | None = None) -> CheckResult:
        """The combined verdict; ``truncated`` says why the history ended early (then the
        calls after the last complete segment are UNKNOWN, never OK)."""
        where = (
            f"{self.operations} operations in {self.segments} segments "
            f"(the largest {self.largest} calls)"
        )
        if self.repeated:
            where += (
                f"; {self.repeated} of them ({self.repeated_operations} operations) repeat a "
                f"segment judged linearizable: the same calls, results and real-time order, "
                f"moved by whole pages"
            )
        counterexample = None
        if self.violation is not None:
            verdict, reason = Verdict.VIOLATION, self.violation.reason
            counterexample = self.violation.counterexample
        elif self.unknown is not None:
            verdict, reason = Verdict.UNKNOWN, f"{self.unknown.reason} (checked {where})"
        elif truncated is not None:
            verdict = Verdict.UNKNOWN
            reason = (
                f"the history is truncated ({truncated}): judged up to its last complete "
                f"segment, {where}, all linearizable; the rest is not judged"
            )
        else:
            verdict = Verdict.OK
            reason = f"all {self.partitions} partitions linearizable ({where})"
        return CheckResult(
            verdict=verdict,
            reason=reason,
            operations=self.operations,
            partitions=self.partitions,
            partitions_checked=self.partitions_checked,
            seconds=self.spent,
            counterexample=counterexample,
        )
