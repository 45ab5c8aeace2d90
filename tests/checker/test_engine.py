"""The generic linearizability engine on tiny hand-made histories, and against brute force."""

from __future__ import annotations

import itertools
import random
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import pytest

from stress.checker import BaseModel, Event, Verdict, check, minimize, prefix_at
from stress.checker._search import TIMEOUT, VIOLATION, check_partition
from stress.errors import UsageError
from stress.selftest.kv import APPEND, GET, PUT, KvModel
from stress.selftest.register import CAS, READ, UNKNOWN, WRITE, RegisterModel

REG = RegisterModel()


def w(task: int, value: int, call: int, ret: int | None) -> Event:
    return Event(task, (WRITE, value), None, call, ret)


def r(task: int, value: object, call: int, ret: int | None) -> Event:
    return Event(task, (READ,), value, call, ret)


def cas(task: int, old: int, new: int, ok: bool, call: int, ret: int | None) -> Event:
    return Event(task, (CAS, old, new), ok, call, ret)


def verdict(events: Sequence[Event], model: Any = REG, **kw: Any) -> Verdict:
    return check(model, events, workers=1, **kw).verdict


def test_empty_and_sequential_histories() -> None:
    assert verdict([]) is Verdict.OK
    assert verdict([w(0, 1, 0, 1), r(1, 1, 2, 3)]) is Verdict.OK
    assert verdict([w(0, 1, 0, 1), r(1, 2, 2, 3)]) is Verdict.VIOLATION
    assert verdict([r(0, None, 0, 1)]) is Verdict.OK
    assert verdict([r(0, 5, 0, 1)]) is Verdict.VIOLATION


def test_concurrency_allows_either_order_but_real_time_binds() -> None:
    # the read overlaps the write: old or new value are both fine
    assert verdict([w(0, 1, 0, 10), r(1, None, 5, 6)]) is Verdict.OK
    assert verdict([w(0, 1, 0, 10), r(1, 1, 5, 6)]) is Verdict.OK
    # the read starts after the write returned: it must see the new value
    assert verdict([w(0, 1, 0, 4), r(1, None, 5, 6)]) is Verdict.VIOLATION
    # touching times count as concurrent
    assert verdict([w(0, 1, 0, 5), r(1, None, 5, 6)]) is Verdict.OK


def test_cas_semantics() -> None:
    assert verdict([w(0, 1, 0, 1), cas(1, 1, 2, True, 2, 3), r(2, 2, 4, 5)]) is Verdict.OK
    assert verdict([w(0, 1, 0, 1), cas(1, 3, 2, True, 2, 3)]) is Verdict.VIOLATION
    assert verdict([w(0, 1, 0, 1), cas(1, 1, 2, False, 2, 3)]) is Verdict.VIOLATION
    assert verdict([w(0, 1, 0, 1), cas(1, 3, 2, False, 2, 3)]) is Verdict.OK


def test_pending_calls_may_take_effect_or_not() -> None:
    # a write that never returned may be seen ...
    assert verdict([w(0, 1, 0, None), r(1, 1, 5, 6)]) is Verdict.OK
    # ... or not
    assert verdict([w(0, 1, 0, None), r(1, None, 5, 6)]) is Verdict.OK
    # but not undone once seen
    assert verdict([w(0, 1, 0, None), r(1, 1, 5, 6), r(2, None, 7, 8)]) is Verdict.VIOLATION
    # nor take effect before it was called
    assert verdict([r(1, 1, 0, 1), w(0, 1, 2, None)]) is Verdict.VIOLATION
    # a pending cas can only succeed in the right state
    assert (
        verdict([w(0, 1, 0, 1), cas(1, 2, 3, False, 2, None), r(2, 3, 4, 5)]) is Verdict.VIOLATION
    )
    assert verdict([w(0, 2, 0, 1), cas(1, 2, 3, False, 2, None), r(2, 3, 4, 5)]) is Verdict.OK
    # only pending calls: nothing to explain
    assert verdict([w(0, 1, 0, None), w(1, 2, 0, None)]) is Verdict.OK


def test_unknown_read_output_allows_anything() -> None:
    assert verdict([w(0, 1, 0, 1), r(1, UNKNOWN, 2, 3), r(2, 1, 4, 5)]) is Verdict.OK


class Pick(BaseModel):
    """A cell that a pending 'pick' may set to any of several values (several outcomes)."""

    def init(self) -> Hashable:
        return 0

    def step(self, state: Any, input: Any, output: Any) -> Hashable | None:
        if input[0] == "pick":
            return output if output in input[1] else None
        return state if output == state else None  # read

    def pending_outcomes(self, state: Any, input: Any) -> Iterable[Hashable]:
        return input[1] if input[0] == "pick" else (state,)

    def is_observer(self, input: Any, output: Any) -> bool:
        return bool(input[0] == "read")


def test_pending_call_with_several_outcomes() -> None:
    model = Pick()
    pick = Event(0, ("pick", (1, 2, 3)), None, 0, None)
    reads = [Event(1, ("read",), 3, 1, 2), Event(1, ("read",), 3, 3, 4)]
    assert verdict([pick, *reads], model) is Verdict.OK
    assert verdict([pick, *reads, Event(1, ("read",), 1, 5, 6)], model) is Verdict.VIOLATION
    assert verdict([pick, Event(1, ("read",), 4, 1, 2)], model) is Verdict.VIOLATION


def brute_force(model: Any, events: Sequence[Event]) -> bool:
    """Reference: try every subset of pending calls and every order respecting real time."""
    done = [e for e in events if e.ret is not None]
    pending = [e for e in events if e.ret is None]
    for k in range(len(pending) + 1):
        for chosen in itertools.combinations(pending, k):
            for order in itertools.permutations([*done, *chosen]):
                if any(
                    a.ret is not None and a.ret < b.call
                    for x, b in enumerate(order)
                    for a in order[x + 1 :]
                ):
                    continue
                states = {model.init()}
                for e in order:
                    nxt: set[Any] = set()
                    for s in states:
                        if e.ret is None:
                            nxt.update(model.pending_outcomes(s, e.input))
                        else:
                            after = model.step(s, e.input, e.output)
                            if after is not None:
                                nxt.add(after)
                    states = nxt
                if states:
                    return True
    return False


class NoObserverRegister(RegisterModel):
    """The register without the observer declaration (so without the reduction)."""

    def is_observer(self, input: Any, output: Any) -> bool:
        return False


class NoHopeRegister(RegisterModel):
    """The register without `hopeless` (so without reduction 4)."""

    def hopeless(self, state: Any, input: Any, output: Any) -> bool:
        return False


class PlainRegister(NoObserverRegister, NoHopeRegister):
    """The register with no reduction at all."""


class NoHopeKv(KvModel):
    """The kv store without `hopeless`."""

    def hopeless(self, state: Any, input: Any, output: Any) -> bool:
        return False


def random_history(rng: random.Random, size: int) -> list[Event]:
    events = []
    for task in range(size):
        call = rng.randrange(20)
        ret = None if rng.random() < 0.2 else call + rng.randrange(1, 8)
        kind = rng.choice([READ, READ, WRITE, CAS])
        if kind == READ:
            events.append(r(task, rng.choice([None, 1, 2]), call, ret))
        elif kind == WRITE:
            events.append(w(task, rng.choice([1, 2]), call, ret))
        else:
            events.append(
                cas(task, rng.choice([1, 2]), rng.choice([1, 2]), rng.random() < 0.5, call, ret)
            )
    return events


def test_engine_agrees_with_brute_force_with_and_without_observers() -> None:
    rng = random.Random(1234)
    seen = {True: 0, False: 0}
    for _ in range(300):
        events = random_history(rng, rng.randrange(1, 6))
        expected = brute_force(REG, events)
        seen[expected] += 1
        for model in (REG, NoObserverRegister(), NoHopeRegister(), PlainRegister()):
            got = verdict(events, model)
            assert got is (Verdict.OK if expected else Verdict.VIOLATION), events
    assert seen[True] > 30 and seen[False] > 30  # both verdicts were exercised


def random_kv_history(rng: random.Random, size: int) -> list[Event]:
    events = []
    for task in range(size):
        call = rng.randrange(20)
        ret = None if rng.random() < 0.2 else call + rng.randrange(1, 8)
        key = rng.choice("ab")
        kind = rng.choice([GET, GET, PUT, APPEND, APPEND])
        if kind == GET:
            value = rng.choice(["", "x", "y", "xy", "yx", "xx"])
            events.append(Event(task, (GET, key, None), value, call, ret))
        else:
            events.append(Event(task, (kind, key, rng.choice(["x", "y", ""])), None, call, ret))
    return events


class PlainKv(NoHopeKv):
    def is_observer(self, input: Any, output: Any) -> bool:
        return False


def test_kv_engine_agrees_with_brute_force() -> None:
    rng = random.Random(99)
    seen = {True: 0, False: 0}
    for _ in range(300):
        events = random_kv_history(rng, rng.randrange(1, 6))
        expected = brute_force(KvModel(), events)
        seen[expected] += 1
        for model in (KvModel(), NoHopeKv(), PlainKv()):
            for partitioned in (True, False):
                got = verdict(events, model, partitioned=partitioned)
                assert got is (Verdict.OK if expected else Verdict.VIOLATION), events
    assert seen[True] > 30 and seen[False] > 30


def test_observer_reduction_prunes_the_search() -> None:
    # many concurrent reads of the initial value, then an impossible read
    events = [r(k, None, 0, 100) for k in range(12)] + [w(20, 1, 0, 100), r(21, 2, 200, 201)]
    with_obs = check_partition(REG, events, None)
    without = check_partition(NoObserverRegister(), events, None)
    assert with_obs.status == without.status == VIOLATION
    assert with_obs.steps * 10 < without.steps


def test_hopeless_reduction_prunes_the_search() -> None:
    # 16 concurrent writes of distinct values and a read of a value nobody wrote: without
    # reduction 4 a huge search, with it the read is hopeless at once
    events = [w(k, k, 0, 100) for k in range(16)] + [r(99, 999, 0, 100)]
    outcome = check_partition(REG, events, None)
    assert outcome.status == VIOLATION and outcome.steps <= 2
    assert check_partition(NoHopeRegister(), events, 0.0).status == TIMEOUT
    # a write of 999 that may come first revives the read: no pruning then, and it is OK
    assert verdict([*events, w(98, 999, 0, 100)]) is Verdict.OK
    # ... but one invoked after the read returned cannot help it
    assert verdict([*events, w(98, 999, 101, 102)]) is Verdict.VIOLATION
    outcome = check_partition(REG, [*events, w(98, 999, 101, 102)], None)
    assert outcome.steps <= 2


def test_pending_cas_revives_whatever_its_recorded_output() -> None:
    # a pending call's output is ignored: this cas may have swapped 1 -> 2
    events = [w(0, 1, 0, 1), cas(1, 1, 2, False, 2, None), r(2, 2, 5, 6)]
    assert verdict(events) is Verdict.OK
    assert verdict([*events[:2], r(2, 3, 5, 6)]) is Verdict.VIOLATION


def test_kv_hopeless_get_needs_a_put_of_a_prefix() -> None:
    kv = KvModel()
    appends = [Event(k, (APPEND, "a", f"<{k}>"), None, 0, 100) for k in range(12)]
    get = Event(50, (GET, "a", None), "<x><3>", 0, 100)
    # one step into each append, and back: "" is a prefix of "<x><3>", "<k>" is not
    assert check_partition(kv, [*appends, get], None).steps == 2 * len(appends) + 1
    assert check_partition(NoHopeKv(), [*appends, get], 0.0).status == TIMEOUT
    put = Event(51, (PUT, "a", "<x>"), None, 0, 100)
    assert verdict([*appends, get, put], kv) is Verdict.OK
    other = Event(51, (PUT, "b", "<x>"), None, 0, 100)  # another key: no help
    outcome = check_partition(kv, [*appends, get, other], None)
    assert outcome.status == VIOLATION and outcome.steps < 100


def test_timeout_gives_unknown_never_ok() -> None:
    # 16 concurrent writes of distinct values and a read of a value nobody wrote: a huge search
    # (without reduction 4, which would see through it)
    events = [w(k, k, 0, 100) for k in range(16)] + [r(99, 999, 0, 100)]
    result = check(PlainRegister(), events, timeout=0.05, workers=1)
    assert result.verdict is Verdict.UNKNOWN
    assert result.reason == "time budget of 0.05 s ran out after 0 of 1 partitions"
    assert result.counterexample is None
    assert check_partition(PlainRegister(), events, 0.0).status == TIMEOUT


def test_memory_budget_gives_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    from stress.checker import _search

    monkeypatch.setattr(_search, "MAX_ENTRIES", 1000)
    events = [w(k, k, 0, 100) for k in range(16)] + [r(99, 999, 0, 100)]
    result = check(PlainRegister(), events, workers=1)
    assert result.verdict is Verdict.UNKNOWN
    assert result.reason == (
        "the search of partition 1 of 1 (17 operations) outgrew its memory budget of 1,000 states"
    )


def test_counterexample_names_the_stuck_operation() -> None:
    events = [w(0, 1, 0, 1), r(1, 1, 2, 3), r(2, 2, 4, 5), w(3, 3, 6, 7)]
    result = check(REG, events, workers=1)
    assert result.verdict is Verdict.VIOLATION
    cx = result.counterexample
    assert cx is not None
    assert cx.events == tuple(events)
    assert cx.linearized == (0, 1)
    assert [index for index, _ in cx.stuck] == [2]
    assert cx.stuck[0][1] == "task 2's read returned 2, but the register holds 1"


def test_counterexample_is_the_longest_partial_linearization() -> None:
    # both writes fit first, but neither order explains both reads
    events = [w(0, 1, 0, 5), w(1, 2, 0, 5), r(2, 1, 6, 7), r(3, 2, 8, 9)]
    cx = check(NoHopeRegister(), events, workers=1).counterexample
    assert cx is not None
    assert cx.linearized == (1, 0, 2)
    assert cx.stuck == ((3, "task 3's read returned 2, but the register holds 1"),)
    # reduction 4 stops each order as soon as a read is hopeless: w1 w2 leaves the read of 1
    # with nothing to revive it (the first of the two equally long orders is kept)
    cx = check(REG, events, workers=1).counterexample
    assert cx is not None
    assert cx.linearized == (0, 1)
    assert cx.stuck == ((2, "task 2's read returned 1, but the register holds 2"),)
    # a longest prefix that ends in a different state gives a different explanation
    events = [w(0, 1, 0, 1), r(1, 2, 2, 3), w(2, 3, 2, 3)]
    cx = check(NoHopeRegister(), events, workers=1).counterexample
    assert cx is not None
    assert cx.linearized == (0, 2)
    assert cx.stuck == ((1, "task 1's read returned 2, but the register holds 3"),)
    # with reduction 4 the search never tries w3 there: the read of 2 is hopeless after w1,
    # as nothing else writes 2
    cx = check(REG, events, workers=1).counterexample
    assert cx is not None
    assert cx.linearized == (0,)
    assert cx.stuck[0] == (1, "task 1's read returned 2, but the register holds 1")


def test_counterexample_names_a_hopeless_call_that_is_no_candidate_yet() -> None:
    # the read of 2 (invoked after both writes returned) can never be explained, as the only
    # write of 2 comes after it: the search stops at once and says so, though the read is not
    # among the calls that could come first
    events = [w(0, 1, 0, 1), w(1, 3, 0, 1), r(2, 2, 4, 5), w(3, 2, 6, 7)]
    outcome = check_partition(REG, events, None)
    assert outcome.status == VIOLATION and outcome.steps == 1
    cx = outcome.counterexample
    # the order shown goes on up to the read (any legal order: the read stays impossible)
    assert cx is not None and cx.linearized == (0, 1)
    assert cx.stuck == ((2, "task 2's read returned 2, but the register holds 3"),)
    # a write of 2 that may come first: the read is not hopeless, the history is fine
    assert verdict([*events, w(4, 2, 2, 3)]) is Verdict.OK


def test_partitions_are_checked_independently() -> None:
    kv = KvModel()
    events = [
        Event(0, (PUT, "a", "x"), None, 0, 1),
        Event(1, (GET, "a", None), "x", 2, 3),
        Event(2, (APPEND, "b", "y"), None, 0, 1),
        Event(3, (GET, "b", None), "yy", 2, 3),
    ]
    calls: list[tuple[int, int]] = []
    result = check(kv, events, workers=1, progress=lambda d, t: calls.append((d, t)))
    assert result.verdict is Verdict.VIOLATION
    assert result.partitions == 2 and result.operations == 4
    assert result.counterexample is not None
    assert {e.input[1] for e in result.counterexample.events} == {"b"}
    assert calls and calls[-1][1] == 2
    fixed = [*events[:3], Event(3, (GET, "b", None), "y", 2, 3)]
    assert verdict(fixed, kv) is Verdict.OK
    assert verdict(fixed, kv, partitioned=False) is Verdict.OK
    assert verdict(events, kv, partitioned=False) is Verdict.VIOLATION


def test_process_pool_agrees_with_serial() -> None:
    kv = KvModel()
    rng = random.Random(7)
    events = []
    for n, key in enumerate("abcdef"):
        value = ""
        for k in range(6):
            value += str(k)
            task = 6 * n + k  # keys run side by side: one task per key and step
            events.append(Event(task, (APPEND, key, str(k)), None, 10 * k, 10 * k + 3))
            events.append(Event(task, (GET, key, None), value, 10 * k + 4, 10 * k + 5))
    bad = [*events, Event(99, (GET, "c", None), "zzz", 1000, 1001)]
    rng.shuffle(bad)
    for history, expected in ((events, Verdict.OK), (bad, Verdict.VIOLATION)):
        serial = check(kv, history, workers=1)
        pooled = check(kv, history, workers=2)
        assert serial.verdict is pooled.verdict is expected
        assert pooled.partitions == 6


class UnpicklableKv(KvModel):
    def __init__(self) -> None:
        self.hook = lambda: None  # lambdas do not pickle


def test_unpicklable_model_falls_back_to_serial() -> None:
    events = [Event(k, (PUT, str(k), "v"), None, 0, 1) for k in range(4)]
    events += [Event(k, (GET, str(k), None), "v", 2, 3) for k in range(4)]
    result = check(UnpicklableKv(), events, workers=2)
    assert result.verdict is Verdict.OK and result.partitions_checked == 4


def test_events_returning_before_their_call_are_rejected() -> None:
    with pytest.raises(UsageError, match="returns at 1 before its call 5"):
        check(REG, [w(0, 1, 5, 1)])


def test_prefix_at_drops_later_calls_and_makes_in_flight_pending() -> None:
    events = [w(0, 1, 0, 2), w(1, 2, 1, 9), r(2, 2, 5, 6)]
    assert prefix_at(events, 4) == [events[0], w(1, 2, 1, None)]


def test_minimize_shrinks_to_the_essential_calls() -> None:
    events = []
    t = 0
    for value in range(1, 8):
        events.append(w(0, value, t, t + 1))
        events.append(r(1, value, t + 2, t + 3))
        t += 4
    bad = r(2, 3, 14, 15)  # reads 3 after 4 was written (at 12-13)
    events.insert(7, bad)
    shrunk = minimize(REG, events)
    assert verdict(shrunk) is Verdict.VIOLATION
    # later calls are cut, every other read dropped; writes are never dropped (not sound)
    assert shrunk == (*[e for e in events if e.input[0] == WRITE and e.call < 14], bad)
    assert all(e in events or e.ret is None for e in shrunk)
    # a linearizable history is returned as it is
    good = [e for e in events if e is not bad]
    assert minimize(REG, good) == tuple(good)


def test_minimize_never_cuts_through_an_answered_call() -> None:
    # Two overlapping reads of different values after one write: a violation whatever the cut.
    # The write overlaps the later calls, so the only cut points that would shorten the
    # history fall inside answered calls: the counterexample keeps every answer.
    events = [
        w(0, 1, 0, 100),
        r(1, 1, 10, 20),
        r(2, 2, 30, 40),
        w(3, 5, 50, 60),
    ]
    shrunk = minimize(REG, events)
    assert verdict(shrunk) is Verdict.VIOLATION
    assert all(e.ret is not None for e in shrunk)


# --- program order: a task's calls are sequential, even when their stamps touch -----------


def test_touching_calls_of_one_task_keep_program_order() -> None:
    """Task 0 writes 1 and then, starting the instant the write returns, reads 0: no program
    can do that (its own write came first). Another task's touching calls stay concurrent."""
    from stress.checker._search import time_order

    model = RegisterModel()
    write = Event(0, (WRITE, 1), None, 0, 5)
    read_own = Event(0, (READ,), None, 5, 9)  # reads the initial nil after its own write
    assert check(model, [write, read_own], workers=1).verdict is Verdict.VIOLATION
    read_other = Event(1, (READ,), None, 5, 9)  # touching, another task: may come first
    assert check(model, [write, read_other], workers=1).verdict is Verdict.OK
    order = time_order([write, read_own, read_other])
    assert order.index((5, 1, 0)) < order.index((5, 0, 1))  # the write returns, then task 0 calls
    assert order.index((5, 0, 2)) < order.index((5, 1, 0))  # task 1's call stays concurrent


def test_a_task_call_stamped_before_its_previous_call_returned_still_follows_it() -> None:
    """Stamps that overlap within one task (a coarse clock): the later call still comes after
    the earlier one, and only after it; other tasks' calls stay concurrent with both."""
    model = RegisterModel()
    write = Event(0, (WRITE, 1), None, 0, 5)
    read_own = Event(0, (READ,), None, 4, 9)  # called before the write "returned"
    assert check(model, [write, read_own], workers=1).verdict is Verdict.VIOLATION
    assert check(model, [write, Event(0, (READ,), 1, 4, 9)], workers=1).verdict is Verdict.OK
    read_other = Event(1, (READ,), None, 4, 9)
    assert check(model, [write, read_other], workers=1).verdict is Verdict.OK
