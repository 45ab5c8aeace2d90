"""Why an mm call cannot be linearized next: the spec's verdict, in words, naming the culprits.

`explain` compares the observed result with what the spec gives in the state reached by the
partial linearization, and names the earlier call that created a conflicting mapping (found by
walking the linearized prefix backwards).
"""

from __future__ import annotations

from collections.abc import Sequence

import mm
from stress.checker._mm_partition import args_decide, created, span
from stress.checker._types import Event


def _range(lo: int, hi: int) -> str:
    return f"[{lo:#x}, {hi:#x})"


def _res(op: mm.Op, result: int) -> str:
    return mm.format_result(op.kind, result)


def creator(prefix: Sequence[Event], page: int, params: mm.Params) -> Event | None:
    """The last linearized mmap that mapped ``page``."""
    for e in reversed(prefix):
        made = created(e.input, e.output if e.ret is not None else None, params)
        if made is not None and made[0] <= page < made[1]:
            return e
    return None


def _why_mapped(
    params: mm.Params, prefix: Sequence[Event], state: mm.State, event: Event, lo: int, hi: int
) -> str:
    """``[lo, hi)`` was (partly) mapped: say by whom and since when."""
    hit = state.overlapping(lo, hi)
    if not hit:
        return ""
    a, b = max(hit[0].start, lo), min(hit[0].end, hi)
    who = creator(prefix, a, params)
    if who is None:
        return f"{_range(a, b)} was mapped"
    if who.ret is not None and who.ret < event.call:
        when = f"before task {event.task} was invoked"
    else:
        when = "earlier in this order"
    return f"task {who.task} had mapped {_range(a, b)} {when} and nothing had unmapped it"


def _states_since(prefix: Sequence[Event], params: mm.Params, event: Event) -> list[mm.State]:
    """The states along ``prefix`` at every point where ``event`` could have taken effect
    (after every linearized call that returned before it was invoked)."""
    states = [mm.State.empty()]
    for e in prefix:
        s = states[-1]
        if e.ret is None:
            decided = mm.plan(s, params, e.input)
            after: mm.State | None = mm.commit(s, decided.changes)
        else:
            after = mm.step_observed(s, params, e.input, e.output)
        states.append(after if after is not None else s)
    first = 0
    for k, e in enumerate(prefix):
        if e.ret is not None and e.ret < event.call:
            first = k + 1
    return states[first:]


def explain(params: mm.Params, prefix: Sequence[Event], state: mm.State, event: Event) -> str:
    """Why ``event`` cannot come next after ``prefix``, which left ``state``."""
    op, got = event.input, event.output
    expected = mm.plan(state, params, op).result
    name = f"task {event.task}'s {op.kind}"
    lo, hi = span(op, params)
    if mm.is_fixed(op):
        if got >= 0 and got != op.addr:
            flag = "MAP_FIXED_NOREPLACE" if mm.is_probe(op) else "MAP_FIXED"
            return (
                f"{name} returned {_res(op, got)}, but a {flag} mmap returns its requested "
                f"address {op.addr:#x} or fails: the flag was ignored and the address used as "
                f"a hint (hint fallback)"
            )
        if got >= 0 and expected == -mm.EEXIST:
            mapped = _why_mapped(params, prefix, state, event, lo, hi)
            return f"{name} returned {_res(op, got)} although {mapped}"
        if got == -mm.EEXIST and expected >= 0:
            # The states are recomputed with the spec's placement: only true of every point
            # when no call of the prefix is a pending non-fixed mmap (placed who knows where).
            exact = not any(e.ret is None and mm.is_nonfixed(e.input) for e in prefix)
            states = _states_since(prefix, params, event) if exact else []
            if exact and not any(s.intersects(lo, hi) for s in states):
                return (
                    f"{name} failed with EEXIST although nothing was mapped in "
                    f"{_range(lo, hi)} at any point of this order where it could take effect"
                )
            return (
                f"{name} failed with EEXIST although nothing was mapped in {_range(lo, hi)} "
                f"at this point of the order"
            )
    if mm.is_nonfixed(op) and got >= 0 and expected >= 0:
        length = mm.page_length(op.length, params.page_size)
        if state.intersects(got, got + length):
            mapped = _why_mapped(params, prefix, state, event, got, got + length)
            return f"{name} returned {_res(op, got)} although {mapped}"
        if got % params.page_size or got < params.mmap_min_addr or got + length > params.task_size:
            return f"{name} returned {_res(op, got)}, which is not a valid placement"
        return (
            f"{name} returned {_res(op, got)} but its hint range "
            f"{_range(expected, expected + length)} was free, so it had to return "
            f"{_res(op, expected)}"
        )
    if got == -mm.ENOMEM and expected != got and _count_bound(op, params):
        return (
            f"{name} returned ENOMEM, which only a mapping count at vm.max_map_count "
            f"({params.max_map_count}) explains, and {state.map_count} mappings exist here"
        )
    if expected < 0 and args_decide(op, params) == expected:
        return (
            f"{name} returned {_res(op, got)} but the spec gives {_res(op, expected)} for these "
            f"arguments whatever is mapped"
        )
    around = state.overlapping(lo, hi) if lo < hi else []
    shown = ", ".join(str(m) for m in around[:4]) or "nothing"
    return (
        f"{name} returned {_res(op, got)} but the spec gives {_res(op, expected)} here "
        f"({_range(lo, hi)} holds {shown})"
    )


def _count_bound(op: mm.Op, params: mm.Params) -> bool:
    """Does an ENOMEM of this call need the mapping count at the limit (a munmap, or a fixed
    mmap whose arguments alone do not give ENOMEM)?"""
    if op.kind == "munmap":
        return True
    return mm.is_fixed(op) and args_decide(op, params) != -mm.ENOMEM
