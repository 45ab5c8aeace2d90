"""The search of one partition: Wing & Gong with Lowe's just-in-time linearization.

As in Porcupine's ``checkSingle``: the calls and returns of the history form a doubly linked
list sorted by time (calls before returns at equal times, so touching calls of different tasks
count as concurrent; a task's own calls are sequential, so where one returns at the instant its
task's next call starts, that return sorts first: program order, see `time_order`). The search
walks the list from its head: every call met before the first return is a *candidate* that may
be linearized next. Linearizing one lifts its call and return out of
the list and restarts the walk; reaching a return (or the tail) means the call of that return
had to be linearized before, so the last choice is undone (unlifted) and the walk moves on.
A cache of (bitset of linearized events, state) pairs already explored prunes revisits; the
bitset is a Python int. The loop is iterative (no recursion limit) and keeps everything in
local variables and flat lists, which is what makes it fast in pure Python.

States are interned to small ints, and the model's step results are memoised per
(state id, event), so each transition is computed once.

Sound reductions (each keeps the verdict exact):

1. Observer reduction. Let ``e`` be a candidate whose model says ``is_observer(input, output)``
   (a completed call that never changes any state it is legal in), legal in the current state
   ``s``. We linearize ``e`` at once and never try the other candidates at this node: if any
   valid completion ``a e b`` exists (``e`` is completed, so it is in every completion), then
   ``e a b`` is valid too. Real time: ``e`` is a candidate, so no unlinearized call returned
   before ``e`` was invoked, hence nothing in ``a`` must precede ``e``. States: ``e`` is legal
   in ``s`` and keeps it, ``a`` then runs from ``s`` as before, and where ``e`` stood the state
   is unchanged because an observer never changes a state it is legal in. So the node has a
   completion iff its child through ``e`` has one; when that child fails, its parent fails too.

2. Pending no-ops. A pending call's outcome that equals the current state is never tried:
   linearizing a pending ``e`` without changing the state leads to (L+e, s), and every
   completion from there is a completion from (L, s) as well (a pending call imposes no
   real-time order on others, and may be left out), which the search explores anyway.

3. Early success. Pending calls never need to be linearized at the end: the search succeeds
   as soon as every completed call is linearized (leaving the rest out is allowed).

4. Hopeless calls (the model's optional `hopeless` / `revives`, see `BaseModel.hopeless`). Let
   ``e`` be a completed, unlinearized call with ``hopeless(s, e)`` in the current state ``s``,
   and let R(e) be the calls that could revive it: those ``x`` that are not observers, with
   ``revives(e, x)``, invoked no later than ``e`` returned (``x.call <= e.ret``). If every call
   of R(e) is already linearized, the node has no completion, and the search backtracks at once.
   Proof: a completion ``a e b`` (``e`` is completed, so it is in every one) puts each ``x`` of
   ``a`` before ``e``, so ``x.call <= e.ret`` (real time); ``x`` is not yet linearized, hence not
   in R(e): it is an observer (legal where it stands, so it keeps the state) or does not revive
   ``e`` (so `hopeless` stays true, whatever outcome ``x`` has if pending). By induction
   ``hopeless`` holds where ``e`` stands, so ``e`` is illegal there: no such completion exists.
   ``hopeless(s, e)`` depends on ``s`` and ``e`` only and is memoised with the step; R(e) is a
   bitset computed once per call, the first time it is hopeless.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import attrs

from stress.checker._types import BaseModel, Counterexample, Event, Model
from stress.errors import UsageError

OK = "ok"
VIOLATION = "violation"
TIMEOUT = "timeout"

# How often (in backtracks, and in pushes) the search looks at the clock and its memory use.
CLOCK_EVERY = 128  # search steps between looks at the clock (a step can be slow: big states)
# Memory budget: the search gives up (UNKNOWN) beyond this many memo and cache entries in all
# (about 100 bytes each).
MAX_ENTRIES = 10_000_000

# A memo entry for (state, call node), encoding the successors as cache-key increments
# ``add = next_state_id << n | event_bit`` (a cache key is ``linearized_bitset | add``):
# 0 = illegal; () = illegal and hopeless (reduction 4); add > 0 = completed call; -add = forced
# observer (next state is this one); tuple of adds = pending call's useful outcomes.
_Succ = int | tuple[int, ...]
_HOPELESS: tuple[int, ...] = ()


@attrs.frozen
class PartOutcome:
    """What the search of one partition found."""

    status: str  # OK, VIOLATION or TIMEOUT
    steps: int
    order: tuple[int, ...] = ()  # a full linearization (OK)
    counterexample: Counterexample | None = None  # VIOLATION
    reason: str = ""  # TIMEOUT: "time" or "memory"


def validate(events: Sequence[Event]) -> None:
    """Reject events that return before they are called."""
    for k, e in enumerate(events):
        if e.ret is not None and e.ret < e.call:
            raise UsageError(
                f"event {k} (task {e.task}): returns at {e.ret} before its call {e.call}"
            )


def time_order(events: Sequence[Event]) -> list[tuple[int, int, int]]:
    """The calls and returns as (time, kind, event) in list order: kind 0 a call, 1 a return.

    At equal times calls come before returns (touching calls are concurrent), except within a
    task. A task's calls are sequential (program order: by call stamp, then return stamp, so
    of two calls stamped at one instant the one that also returned then came first): a call
    took effect before its task's next call started, so where its return is stamped at or
    after that start it is placed at the start, just before the next call. That is all
    program order implies (its linearization point precedes the next call, so also every call
    invoked later). Entries
    at one instant: other calls, then each task's chain (return, next call, its return if
    chained too, ...), then other returns. A call with no response stays free: its task may
    have gone on without it.
    """
    by_task: dict[Any, list[int]] = {}
    for i, e in enumerate(events):
        by_task.setdefault(e.task, []).append(i)
    chained: set[tuple[int, int]] = set()  # (event, kind) entries in a program-order chain
    moved: dict[int, int] = {}  # event -> the time its return is placed at
    seq = [0] * len(events)
    for mine in by_task.values():
        mine.sort(key=lambda i: _program_key(events[i], i))
        for pos, i in enumerate(mine):
            seq[i] = pos
        for a, b in itertools.pairwise(mine):
            ret = events[a].ret
            if ret is not None and ret >= events[b].call:
                moved[a] = events[b].call
                chained.add((a, 1))
                chained.add((b, 0))
    entries: list[tuple[int, int, int]] = []
    for i, e in enumerate(events):
        entries.append((e.call, 0, i))
        if e.ret is not None:
            entries.append((moved.get(i, e.ret), 1, i))
    if not chained:
        entries.sort()
        return entries

    def key(entry: tuple[int, int, int]) -> tuple[int, int, int, int]:
        time, kind, i = entry
        if (i, kind) in chained:
            return (time, 1, hash(events[i].task), 2 * seq[i] + kind)
        return (time, 0 if kind == 0 else 2, 0, i)

    entries.sort(key=key)
    return entries


def _program_key(e: Event, i: int) -> tuple[int, int, int]:
    """A call's place in its task's program order: call stamp, return stamp (no response:
    last), position in the history."""
    return (e.call, _NEVER if e.ret is None else e.ret, i)


_NEVER = 1 << 128  # after every return stamp


def check_partition(model: Model, events: Sequence[Event], deadline: float | None) -> PartOutcome:
    """Search one partition for a linearization; ``deadline`` is a `time.monotonic` instant."""
    n = len(events)
    comp = [e.ret is not None for e in events]
    left = sum(comp)
    if left == 0:
        return PartOutcome(OK, 0)

    inputs = [e.input for e in events]
    outputs = [e.output for e in events]
    observer = [comp[i] and model.is_observer(inputs[i], outputs[i]) for i in range(n)]

    # The linked list of entries: nodes 0..m-1 in time order, then head m and tail m+1.
    entries = _observers_first(time_order(events), observer)
    m = len(entries)
    head, tail = m, m + 1
    nxt = [*range(1, m), tail, 0, tail]  # nxt[m - 1] = tail, nxt[head] = 0
    prv = [head, *range(0, m - 1), head, m - 1]  # prv[0] = head, prv[tail] = m - 1
    isret = [kind == 1 for _, kind, _ in entries] + [False, True]
    evof = [i for _, _, i in entries] + [-1, -1]
    call_node = [0] * n
    match = [-1] * (m + 2)
    for node, (_, kind, i) in enumerate(entries):
        if kind == 0:
            call_node[i] = node
        else:
            match[call_node[i]] = node

    obs_node = [False] * (m + 2)  # by call node: the event is an observer
    bit = [0] * (m + 2)  # by call node: the event's bit in the linearized set
    pend = [False] * (m + 2)  # by call node: the event is pending
    for node in range(m):
        if not isret[node]:
            bit[node] = 1 << evof[node]
            pend[node] = not comp[evof[node]]
            obs_node[node] = observer[evof[node]]

    init = model.init()
    states: list[Hashable] = [init]
    ids: dict[Hashable, int] = {init: 0}
    step = model.step
    pending_outcomes = model.pending_outcomes
    hopeless = getattr(model, "hopeless", None)
    if getattr(hopeless, "__func__", None) is BaseModel.hopeless:
        hopeless = None  # the default never prunes: spare the calls
    revives = getattr(model, "revives", None)
    revive = [-1] * (m + 2)  # by call node: the bitset R(e) of reduction 4; -1 = not yet known

    # the calls that may revive another, by time of call
    movers = sorted((events[j].call, j) for j in range(n) if not observer[j])
    mover_calls = [call for call, _ in movers]

    def revivers(i: int) -> int:
        """R(e) for event i (reduction 4): the calls that may revive it."""
        e = events[i]
        assert e.ret is not None
        mask = 0
        for _, j in movers[: bisect.bisect_right(mover_calls, e.ret)]:
            if j != i and (revives is None or revives(e, events[j])):
                mask |= 1 << j
        return mask

    def intern(state: Hashable) -> int:
        nid = ids.get(state)
        if nid is None:
            nid = ids[state] = len(states)
            states.append(state)
        return nid

    def successors(sid: int, node: int) -> _Succ:
        """The memo entry of (state, call node); see `_Succ`."""
        i = evof[node]
        if not pend[node]:
            after = step(states[sid], inputs[i], outputs[i])
            if after is None:
                if hopeless is not None and hopeless(states[sid], inputs[i], outputs[i]):
                    if revive[node] < 0:
                        revive[node] = revivers(i)
                    return _HOPELESS
                return 0
            nid = ids.get(after)
            if nid is None:
                nid = intern(after)
            add = nid << n | bit[node]
            return -add if nid == sid and observer[i] else add
        found: list[int] = []
        for after in pending_outcomes(states[sid], inputs[i]):
            nid = intern(after)
            add = nid << n | bit[node]
            if nid != sid and add not in found:  # reduction 2
                found.append(add)
        return tuple(found) if found else 0

    memo: dict[int, _Succ] = {}
    memo_get = memo.get
    cache: set[int] = set()
    stack: list[tuple[int, int, int]] = []  # (call node, state id before, kind)
    push = stack.append
    pop = stack.pop
    monotonic = time.monotonic
    stride = m + 2
    lin = 0  # bitset of linearized events
    sid = 0  # current state id
    visits = backs = 0
    best: list[int] = []
    best_len = -1
    best_sid = 0
    doom = best_doom = -1  # the hopeless call that failed the node (reduction 4), if any

    doomed_by = [-1]  # where `observers` puts the hopeless call it found

    def observers(scan: int, sid: int, lin: int) -> int:
        """Where the walk of a new node starts: the observers among the candidates (from
        ``scan`` on) are looked at first, a reordering of the walk (see `_observers_first`).
        A legal one is forced (reduction 1): start there; a hopeless one fails the node
        (reduction 4): the tail, to backtrack. Otherwise the head of the list."""
        while not isret[scan]:
            if obs_node[scan]:
                key = sid * stride + scan
                v = memo_get(key)
                if v is None:
                    v = memo[key] = successors(sid, scan)
                if not v:
                    if v == () and lin & revive[scan] == revive[scan]:
                        doomed_by[0] = evof[scan]
                        return tail
                elif v < 0:  # type: ignore[operator]
                    return scan
            scan = nxt[scan]
        return nxt[head]

    # Reduction 4 does not need the call to be a candidate: after each step that changes the
    # state, the completed observers not yet linearized are looked at too, those whose revivers
    # are all linearized. `hopeless` depends on (state, input, output) only: one call for all
    # the observers with the same input and output (when those can be hashed).
    # (input, output, bits, members (bit, R(e), event))
    watched: list[tuple[Any, Any, int, list[tuple[int, int, int]]]] = []
    if hopeless is not None:
        groups: dict[Any, tuple[Any, Any, int, list[tuple[int, int, int]]]] = {}
        for i in sorted(range(n), key=lambda i: events[i].ret or 0):
            if not observer[i]:
                continue
            mask = revive[call_node[i]] = revivers(i)
            gkey: Any = (inputs[i], outputs[i])
            try:
                group = groups.get(gkey)
            except TypeError:  # unhashable: a group of its own
                gkey, group = i, None
            if group is None:
                group = (inputs[i], outputs[i], 0, [])
            group[3].append((1 << i, mask, i))
            groups[gkey] = (group[0], group[1], group[2] | 1 << i, group[3])
        watched = list(groups.values())
    # After a step of x only the groups whose hopelessness x may change (the model's
    # `disturbs`) or whose revivers include x need a new look: for the others nothing changed
    # since their last look (at the root, or after an earlier step), which found them not
    # hopeless, or the node would have failed there. (Looking at fewer is sound in any case:
    # a node fails only on a call found hopeless.)
    disturbs = getattr(model, "disturbs", None)
    if getattr(disturbs, "__func__", None) is BaseModel.disturbs:
        disturbs = None
    watch_of: list[list[tuple[Any, Any, int, list[tuple[int, int, int]]]]] = [watched] * n
    if watched and disturbs is not None:
        watch_of = [[] for _ in range(n)]
        movers_ = [j for _, j in movers]
        for group in watched:
            input, output, _, members = group
            masks = 0
            for _, mask, _ in members:
                masks |= mask
            for j in movers_:
                if masks >> j & 1 or disturbs(input, output, events[j]):
                    watch_of[j].append(group)

    def doomed(sid: int, lin: int, watched: list[Any]) -> int:
        """A watched call hopeless in this state with its revivers all linearized, or -1."""
        state = states[sid]
        for input, output, bits, members in watched:
            if lin & bits == bits:
                continue  # all linearized
            for b, mask, i in members:
                if not lin & b and lin & mask == mask:
                    if hopeless(state, input, output):  # type: ignore[misc]
                        return i
                    break
        return -1

    if watched and (doom := doomed(sid, lin, watched)) >= 0:
        node = tail
    else:
        node = observers(nxt[head], sid, lin)
        if node == tail:
            doom = doomed_by[0]
    while True:
        if not isret[node]:
            key = sid * stride + node
            v = memo_get(key)
            if v is None:
                v = memo[key] = successors(sid, node)
            if not v:  # illegal here
                if v == () and lin & revive[node] == revive[node]:
                    doom = evof[node]
                    node = tail  # hopeless, nothing left to revive it (reduction 4): backtrack
                    continue
                node = nxt[node]
                continue
            if pend[node]:
                for add in v:  # type: ignore[union-attr]
                    k = lin | add
                    if k not in cache:
                        break
                else:
                    node = nxt[node]
                    continue
                push((node, sid, 1 if len(v) > 1 else 0))  # type: ignore[arg-type]
                sid = add >> n
                forced = False
            elif v > 0:  # type: ignore[operator]
                k = lin | v  # type: ignore[operator]
                if k in cache:
                    node = nxt[node]
                    continue
                push((node, sid, 0))
                sid = v >> n  # type: ignore[operator]
                forced = False
            else:  # a legal observer that keeps the state: forced (reduction 1)
                k = lin | -v  # type: ignore[operator]
                if k in cache:
                    node = tail  # so this node fails: backtrack
                    continue
                push((node, sid, 2))
                forced = True
            cache.add(k)
            visits += 1
            if not visits % CLOCK_EVERY:
                if deadline is not None and monotonic() > deadline:
                    return PartOutcome(TIMEOUT, visits + backs, reason="time")
                if len(cache) + len(memo) > MAX_ENTRIES:
                    return PartOutcome(TIMEOUT, visits + backs, reason="memory")
            lin |= bit[node]
            # lift the call and its return out of the list
            p = prv[node]
            q = nxt[node]
            nxt[p] = q
            prv[q] = p
            r = match[node]
            if r >= 0:
                p = prv[r]
                q = nxt[r]
                nxt[p] = q
                prv[q] = p
                left -= 1
                if not left:
                    order = tuple(evof[c] for c, _, _ in stack)
                    return PartOutcome(OK, visits + backs, order)
            if forced:  # the state and the observers before this one are as they were
                node = observers(nxt[node], sid, lin)
            elif watched and (doom := doomed(sid, lin, watch_of[evof[node]])) >= 0:
                node = tail  # reduction 4, on a call that is not a candidate yet
                continue
            else:
                node = observers(nxt[head], sid, lin)
            if node == tail:
                doom = doomed_by[0]
            continue
        # backtrack: undo the last choice (and the forced ones above it)
        backs += 1
        if not backs % CLOCK_EVERY:
            if deadline is not None and monotonic() > deadline:
                return PartOutcome(TIMEOUT, visits + backs, reason="time")
            if len(cache) + len(memo) > MAX_ENTRIES:
                return PartOutcome(TIMEOUT, visits + backs, reason="memory")
        if len(stack) > best_len:
            best_len = len(stack)
            best = [evof[c] for c, _, _ in stack]
            best_sid = sid
            best_doom = doom
        doom = -1
        kind = 2
        while kind == 2:
            if not stack:
                return PartOutcome(
                    VIOLATION,
                    visits + backs,
                    counterexample=_counterexample(
                        model, events, entries, best, states[best_sid], best_doom
                    ),
                )
            node, sid, kind = pop()
            lin ^= bit[node]
            r = match[node]
            if r >= 0:
                nxt[prv[r]] = r
                prv[nxt[r]] = r
                left += 1
            nxt[prv[node]] = node
            prv[nxt[node]] = node
        if kind == 0:
            node = nxt[node]


def _observers_first(
    entries: list[tuple[int, int, int]], observer: list[bool]
) -> list[tuple[int, int, int]]:
    """The entries with each run of calls between two returns put observers first.

    Which calls are candidates at a node depends only on which returns precede each call in
    the list, and that does not change when calls swap places with no return between them; the
    order in which candidates are tried changes, but not the verdict. Observers first: a legal
    one is forced (reduction 1) and a hopeless one ends the node (reduction 4) before the walk
    branches on a call that changes the state.
    """
    out: list[tuple[int, int, int]] = []
    run: list[tuple[int, int, int]] = []
    for entry in entries:
        if entry[1] == 0:
            run.append(entry)
            continue
        if len(run) > 1:
            run.sort(key=lambda c: not observer[c[2]])  # stable: time order otherwise
        out.extend(run)
        run.clear()
        out.append(entry)
    if len(run) > 1:
        run.sort(key=lambda c: not observer[c[2]])
    out.extend(run)
    return out


def _counterexample(
    model: Model,
    events: Sequence[Event],
    entries: list[tuple[int, int, int]],
    order: list[int],
    state: Any,
    doom: int = -1,
) -> Counterexample:
    """Explain, for each candidate after the longest partial linearization, why it is stuck.

    The order is first extended by the legal observers among the candidates (reduction 1: the
    search would have taken them, and the state stays). ``doom``, when not -1, is the call
    found hopeless there (reduction 4): it stays illegal whatever else comes, so until it is a
    candidate the order goes on with any legal completed call (each step legal and in time, so
    still a partial linearization), and it is explained even if it never becomes one.
    """
    order = list(order)
    done = set(order)
    while True:
        candidates = []
        for _, kind, i in entries:
            if i in done:
                continue
            if kind == 1:
                break
            candidates.append(i)
        legal = [
            (not model.is_observer(events[i].input, events[i].output), i, after)
            for i in candidates
            if events[i].ret is not None
            and (after := model.step(state, events[i].input, events[i].output)) is not None
        ]
        if not legal:
            break
        mutator, i, after = min(legal, key=lambda item: item[0])  # observers first, then time
        if mutator and (doom < 0 or doom in candidates):
            break
        state = after
        order.append(i)
        done.add(i)
    prefix = [events[i] for i in order]
    stuck: list[tuple[int, str]] = []
    for _, kind, i in entries:
        if i in done:
            continue
        if kind == 1:
            break
        stuck.append((i, _why(model, prefix, state, events[i])))
    if doom >= 0 and doom not in done and all(i != doom for i, _ in stuck):
        stuck.append((doom, _why(model, prefix, state, events[doom])))
    stuck.sort(key=lambda item: events[item[0]].ret is None)  # completed calls first
    return Counterexample(tuple(events), tuple(order), tuple(stuck))


def _why(model: Model, prefix: Sequence[Event], state: Any, event: Event) -> str:
    describe: Callable[[Any], str] = model.describe_state
    if event.ret is None:
        return (
            f"task {event.task}'s {model.describe_operation(event)}: taking effect here, "
            f"or never, leaves no order for the rest"
        )
    after = model.step(state, event.input, event.output)
    if after is None:
        return model.explain(prefix, state, event)
    return (
        f"task {event.task}'s {model.describe_operation(event)} fits here (state becomes "
        f"{describe(after)}), but no order of the remaining calls works after it"
    )
