"""Spec-level bug variants: each wraps the spec's `plan` (never copies it) to decide a call wrong.

A plan function has the spec's signature, `(state, params, op) -> Plan`; the variant cores call
it in `decide`, so the lock discipline stays correct and only the rules change. Each function's
docstring names the bug; `mm.variants` names the origin.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from mm._geometry import is_fixed, is_probe, page_range
from mm._names import MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_PRIVATE
from mm._op import Op
from mm._params import Params
from mm._spec import EEXIST, EINVAL, U64, Plan, plan
from mm._state import Mapping, State

PlanFn = Callable[[State, Params, Op], Plan]
FIXED_ANY = MAP_FIXED | MAP_FIXED_NOREPLACE


def _probe_range(op: Op, params: Params) -> tuple[int, int] | None:
    """The page range of a NOREPLACE mmap, None for anything else."""
    return page_range(op, params.page_size) if is_probe(op) else None


def start_only_overlap(state: State, params: Params, op: Op) -> Plan:
    """A collision counts only when a mapping covers the start of the requested range; a
    mapping further in is clobbered as MAP_FIXED would (Linux 4.17: `vm_start <= addr`)."""
    probe = _probe_range(op, params)
    if probe is None or state.at(probe[0]) is not None:
        return plan(state, params, op)
    # Decide as if the mappings further in were not there; committing the change over the
    # real state then replaces their pages.
    return plan(state.without(*probe), params, op)


def flag_ignored(state: State, params: Params, op: Op) -> Plan:
    """The flag is unknown: the address is a hint (MAP_FIXED alongside it still clobbers)."""
    if not is_probe(op):
        return plan(state, params, op)
    return plan(state, params, attrs.evolve(op, flags=op.flags & ~MAP_FIXED_NOREPLACE))


def zero_einval(state: State, params: Params, op: Op) -> Plan:
    """NOREPLACE at address 0 fails with EINVAL up front (the right errno is EPERM without
    CAP_SYS_RAWIO, and success with it)."""
    if is_probe(op) and op.addr == 0:
        return Plan(-EINVAL)
    return plan(state, params, op)


def zero_fixed_elsewhere(state: State, params: Params, op: Op) -> Plan:
    """A fixed request (MAP_FIXED or NOREPLACE) at address 0 is placed like a non-fixed call
    (the free-range search answers), instead of EPERM or page 0."""
    if is_fixed(op) and op.addr == 0:
        return plan(state, params, attrs.evolve(op, flags=op.flags & ~FIXED_ANY))
    return plan(state, params, op)


def adjacent_overlap(state: State, params: Params, op: Op) -> Plan:
    """The overlap test compares closed intervals: a mapping that only touches the requested
    range (ending at its start, or starting at its end) counts as a collision."""
    probe = _probe_range(op, params)
    if probe is None or probe[0] == probe[1]:
        return plan(state, params, op)
    start, end = probe
    touching = state.at(start - 1) is not None if start else False
    touching = touching or state.at(end) is not None
    if not touching:
        return plan(state, params, op)
    # Rule 12 fires where the spec has it: decide over a state where the range is taken.
    blocker = Mapping(start, min(end, params.task_size), 0, MAP_PRIVATE, origin=start + 1)
    return plan(state.with_mapping(blocker), params, op)


def noreplace_clobbers(state: State, params: Params, op: Op) -> Plan:
    """NOREPLACE behaves exactly like MAP_FIXED: existing pages in the range are replaced."""
    if not is_probe(op):
        return plan(state, params, op)
    flags = (op.flags & ~MAP_FIXED_NOREPLACE) | MAP_FIXED
    return plan(state, params, attrs.evolve(op, flags=flags))


def one_min_addr(state: State, params: Params, op: Op) -> Plan:
    """One minimum address, the larger `mmap_min_addr`, serves both as the hint floor and as
    the EPERM limit for fixed mappings: a fixed mapping at vm.mmap_min_addr (allowed without
    CAP_SYS_RAWIO) is refused with EPERM."""
    single = attrs.evolve(params, dac_mmap_min_addr=params.mmap_min_addr)
    return plan(state, single, op)


def overlap_before_checks(state: State, params: Params, op: Op) -> Plan:
    """The NOREPLACE overlap test runs right after the length check, before the range,
    alignment and permission checks: an unaligned, out-of-range or forbidden request that
    overlaps a mapping gets EEXIST instead of EINVAL, ENOMEM or EPERM."""
    probe = _probe_range(op, params)
    early_ok = op.offset & (params.page_size - 1) == 0 and op.length & U64
    early_ok = early_ok and (op.flags & MAP_ANONYMOUS or op.fd >= 0)  # rules 1-3 still first
    if probe is not None and early_ok:
        start, end = probe
        if end > start and state.intersects(start, end):
            return Plan(-EEXIST)
    return plan(state, params, op)


def mprotect_all_or_nothing(state: State, params: Params, op: Op) -> Plan:
    """An mprotect that fails on a hole changes nothing (Linux keeps the walked prefix
    changed)."""
    decided = plan(state, params, op)
    if op.kind == "mprotect" and decided.result < 0 and decided.changes:
        return Plan(decided.result, ())
    return decided
