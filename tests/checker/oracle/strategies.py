"""Hypothesis strategies for tiny mm histories: 2-4 tasks, 1-4 calls each.

A history is built the way a real run makes one: every task gets a short program (NOREPLACE,
MAP_FIXED and hinted mmaps, munmap, mprotect; addresses in a small arena, near 0 and the
mmap_min_addr floor, near TASK_SIZE and near 2^64, a few unaligned or wrapping arguments); a
random interleaving that keeps each task's program order is run on the sequential spec (a
non-fixed mmap gets the spec's placement or another allowed one, also a random far page);
then stamps are drawn so that each call's interval holds its point in that run and a task's
calls never overlap (they may touch), which makes touching, nested and overlapping intervals
across tasks common (and, with a narrow width, serial stretches that the checker's time cuts
split). Some histories have one task map over a hint near 2^64, unmap a page of what it got
and probe the next page. A task's last call may be pending, having taken effect in the run or not.
Such a history is linearizable by construction (`Tiny.sequential` says so). Half the histories
are then perturbed: a result replaced by another plausible one, two calls of one task swapped
(results from an order the program could not run), or a call's interval shrunk so it no longer
holds its point. Those may or may not be linearizable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from hypothesis import strategies as st

import mm
from tests.checker.oracle.brute import Call, is_nonfixed_mmap

P = 4096
B = 0x100000000000
TASK_SIZE = mm.Params.reference().task_size
TOP = 1 << 64
ANON = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS
RW = mm.PROT_READ | mm.PROT_WRITE


class Tiny(NamedTuple):
    """A generated history: the params it is judged by, its calls, and whether it is
    linearizable by construction (no perturbation applied)."""

    params: mm.Params
    calls: tuple[Call, ...]
    sequential: bool
    note: str


_arena = st.integers(0, 4).map(lambda k: B + k * P)
_low = st.sampled_from([0, P, 0x10000 - P, 0x10000, 0x10000 + P])
_high = st.sampled_from([TASK_SIZE - 2 * P, TASK_SIZE - P, TASK_SIZE, TASK_SIZE + P])
_wrap = st.sampled_from([TOP - P, TOP - 2 * P, TOP - 3 * P])
_odd = st.sampled_from([B + 1, B + P - 1])
# REL + k stands for "k pages from the last address a non-fixed mmap returned in the run" (B
# if none yet), resolved when the program runs: calls that act on what a hinted mmap mapped
# (the pages just above or below it, its second page) are then common, not a coincidence.
REL = 1 << 80
_rel = st.integers(-1, 3).map(lambda k: REL + k)

addresses = st.one_of(_arena, _arena, _arena, _arena, _rel, _rel, _low, _high, _wrap, _odd)
hints = st.one_of(st.just(0), _arena, _arena, _low, _high, _wrap, _wrap, _odd)
_pages = st.integers(1, 3).map(lambda k: k * P)
lengths = st.one_of(
    _pages, _pages, _pages, _pages, st.sampled_from([0, P + 1, TOP - P, 1 << 47, 2 * P - 1])
)
prots = st.sampled_from([RW, RW, mm.PROT_READ, mm.PROT_NONE])


@st.composite
def ops(draw: st.DrawFn, movable: bool = False) -> mm.Op:
    """A call; ``movable``: only calls `stress.checker._mm_shift` may move (fixed, in the
    arena, whole pages)."""
    if movable:
        kind = draw(st.sampled_from(["nr", "nr", "fixed", "munmap", "mprotect"]))
        addr, length = draw(_arena), draw(_pages)
        if kind == "nr":
            return mm.Op.mmap(addr, length, draw(prots), mm.NR)
        if kind == "fixed":
            return mm.Op.mmap(addr, length, draw(prots), ANON | mm.MAP_FIXED)
        if kind == "munmap":
            return mm.Op.munmap(addr, length)
        return mm.Op.mprotect(addr, length, draw(prots))
    kind = draw(
        st.sampled_from(
            ["nr", "nr", "nr", "fixed", "hint", "hint", "wrap", "munmap", "page", "mprotect"]
        )
    )
    if kind == "wrap":  # hinted within its length of 2^64: the hint can never be taken
        k = draw(st.integers(1, 2))
        return mm.Op.mmap(TOP - k * P, draw(st.integers(k + 1, 3)) * P, RW, ANON)
    if kind == "page":  # unmap one page of what the last non-fixed mmap returned
        return mm.Op.munmap(draw(_rel), P)
    if kind == "nr":
        return mm.Op.mmap(draw(addresses), draw(lengths), draw(prots), mm.NR)
    if kind == "fixed":
        return mm.Op.mmap(draw(addresses), draw(lengths), draw(prots), ANON | mm.MAP_FIXED)
    if kind == "hint":
        flags = draw(st.sampled_from([ANON, ANON, ANON, mm.MAP_ANONYMOUS]))  # last: no type
        return mm.Op.mmap(draw(hints), draw(lengths), draw(prots), flags)
    if kind == "munmap":
        return mm.Op.munmap(draw(addresses), draw(lengths))
    prot = draw(st.one_of(prots, st.just(0x10)))
    return mm.Op.mprotect(draw(addresses), draw(lengths), prot)


def _placements(state: mm.State, params: mm.Params, op: mm.Op, spec: int) -> list[int]:
    length = mm.page_align(op.length % TOP, params)
    hint = op.addr % TOP & ~(P - 1)
    wanted = [spec, hint, B, B + P, B + 2 * P, B + 4 * P, 0x10000, TASK_SIZE - length]
    return [x for x in wanted if mm.is_allowed_placement(state, params, op, x)]


def _resolve(op: mm.Op, last: int) -> mm.Op:
    if op.addr < REL - 8:
        return op
    return mm.Op(op.kind, last + (op.addr - REL) * P, op.length, op.prot, op.flags)


def _edge(draw: st.DrawFn, lo: int, hi: int) -> int:
    """A stamp in [lo, hi], often an end (so that intervals touch)."""
    if lo >= hi:
        return lo
    return draw(st.one_of(st.just(lo), st.just(hi), st.integers(lo, hi)))


@st.composite
def histories(draw: st.DrawFn, perturb: bool = True, movable: bool = False) -> Tiny:
    params = draw(st.sampled_from([mm.Params.reference(), mm.Params.reference(privileged=False)]))
    tasks = draw(st.integers(2, 4))
    programs = [draw(st.lists(ops(movable), min_size=1, max_size=4)) for _ in range(tasks)]
    if (
        not movable and draw(st.integers(0, 4)) == 0
    ):  # one task maps over the top hint, unmaps a page, probes
        k = draw(st.integers(1, 2))
        probe = draw(
            st.sampled_from([mm.Op.mmap(REL + 1, P, RW, mm.NR), mm.Op.mprotect(REL + 1, P, RW)])
        )
        programs[0] = [mm.Op.mmap(TOP - k * P, (k + 1) * P, RW, ANON), mm.Op.munmap(REL, P), probe]
    # how far an interval may reach around its point (0: a serial history)
    width = draw(st.sampled_from([0, 1, 3, 1 << 30]))
    # pending: 0 answered, 1 pending and took effect, 2 pending and never took effect
    pend = [draw(st.sampled_from([0, 0, 0, 1, 2])) for _ in range(tasks)]
    slots = [t for t in range(tasks) for _ in programs[t]]
    interleave = draw(st.permutations(slots))
    # run the interleaving on the sequential spec
    state = mm.State.empty()
    seen = [0] * tasks
    point: dict[tuple[int, int], int] = {}
    result: dict[tuple[int, int], int | None] = {}
    recent = B
    for k, t in enumerate(interleave):
        i = seen[t]
        seen[t] += 1
        op = programs[t][i] = _resolve(programs[t][i], recent)
        last = i == len(programs[t]) - 1
        point[t, i] = 3 * k + 3
        if last and pend[t] == 2:
            result[t, i] = None
            continue
        decided = mm.plan(state, params, op)
        got = decided.result
        if is_nonfixed_mmap(op) and got >= 0:
            choices = _placements(state, params, op, got)
            far = draw(st.integers(0x10000 // P, TASK_SIZE // P - 4)) * P
            if mm.is_allowed_placement(state, params, op, far):
                choices.append(far)
            got = draw(st.sampled_from(choices))
            recent = got
        after = mm.step_observed(state, params, op, got)
        assert after is not None, (op, got)
        state = after
        result[t, i] = None if last and pend[t] == 1 else got
    # stamps: each interval holds its point; a task's calls are sequential (may touch)
    end = 3 * len(interleave) + 6
    calls: list[Call] = []
    for t in range(tasks):
        lo = 0
        for i, op in enumerate(programs[t]):
            here = point[t, i]
            nxt = point[t, i + 1] if i + 1 < len(programs[t]) else end
            call = _edge(draw, max(lo, here - width), here)
            if i == len(programs[t]) - 1 and pend[t]:
                calls.append(Call(t, op, None, call, None))
                break
            ret = _edge(draw, here, min(nxt, here + width))
            calls.append(Call(t, op, result[t, i], call, ret))
            lo = ret
    note = "sequential run"
    sequential = True
    if perturb and draw(st.booleans()):
        calls, note = _perturb(draw, calls)
        sequential = False
    order = draw(st.permutations(range(len(calls))))  # the checker must not rely on input order
    return Tiny(params, tuple(calls[k] for k in order), sequential, note)


def _other_results(call: Call) -> list[int]:
    op = call.op
    if op.kind == "mmap":
        options = [-mm.EEXIST, -mm.ENOMEM, -mm.EINVAL, -mm.EPERM, op.addr % TOP, B, B + P]
    else:
        options = [0, -mm.EINVAL, -mm.ENOMEM]
    return [r for r in options if r != call.result and r >= -4095 and r < TOP]


def _perturb(draw: st.DrawFn, calls: Sequence[Call]) -> tuple[list[Call], str]:
    calls = list(calls)
    how = draw(st.sampled_from(["result", "result", "swap", "shrink"]))
    answered = [k for k, c in enumerate(calls) if not c.pending]
    if how == "swap":
        pairs = [
            (a, b) for a in answered for b in answered if a < b and calls[a].task == calls[b].task
        ]
        if pairs:
            a, b = draw(st.sampled_from(pairs))
            x, y = calls[a], calls[b]
            calls[a] = x._replace(op=y.op, result=y.result)
            calls[b] = y._replace(op=x.op, result=x.result)
            return calls, f"swapped two calls of task {x.task}"
        how = "result"
    if how == "shrink" and answered:
        k = draw(st.sampled_from(answered))
        c = calls[k]
        assert c.ret is not None
        if c.ret > c.call:
            mid = draw(st.integers(c.call, c.ret))
            if draw(st.booleans()):
                calls[k] = c._replace(call=mid)
            else:
                calls[k] = c._replace(ret=mid)
            return calls, f"shrunk the interval of call {k}"
        how = "result"
    if not answered:
        return calls, "nothing to perturb"
    k = draw(st.sampled_from(answered))
    options = _other_results(calls[k])
    calls[k] = calls[k]._replace(result=draw(st.sampled_from(options)))
    return calls, f"changed the result of call {k}"
