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
from mm._spec import EEXIST, EINVAL, ENOMEM, EPERM, U64, Plan, plan
from mm._state import Mapping, State

PlanFn = Callable[[State, Params, Op], Plan]
FIXED_ANY = MAP_FIXED | MAP_FIXED_NOREPLACE
PMD_SPAN = 2 << 20
"""The span of one x86-64 page-table entry at the PMD level (2 MiB): stride-skip-overlap's step."""
ALPHA_NOREPLACE = 0x200000
"""MAP_FIXED_NOREPLACE on Alpha (arch/alpha/include/uapi/asm/mman.h); x86-64 and the generic ABI
use 0x100000, and Linux on x86-64 ignores the bit 0x200000."""


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


def _walk_sees(state: State, start: int, end: int, span: int) -> bool:
    """Does the stride walk over [start, end) meet a mapping? Step k tests [start + k*span, next
    boundary): from an unaligned start the walk tests, in every `span` block, only the pages at
    or above the start's offset in the block, so a mapping lying wholly below that offset (just
    past a boundary) is missed."""
    offset = start % span
    for m in state.overlapping(start, end):
        lo, hi = max(m.start, start), min(m.end, end)
        if lo // span != (hi - 1) // span or (hi - 1) % span >= offset:
            return True
    return False


def stride_skip_overlap(state: State, params: Params, op: Op) -> Plan:
    """The overlap test walks the request one page-table level (2 MiB) at a time: it tests the
    part up to the next boundary, then advances by the level's span from where it stood
    (`addr += PMD_SIZE`) instead of to that boundary (`pmd_addr_end`). From an unaligned start
    it skips the first pages past every boundary; a mapping found nowhere on the walk is
    clobbered as MAP_FIXED would."""
    decided = plan(state, params, op)
    if decided.result != -EEXIST or not is_probe(op):
        return decided
    start, end = page_range(op, params.page_size)
    if _walk_sees(state, start, end, PMD_SPAN):
        return decided
    return plan(state.without(start, end), params, op)


def wrong_flag_value(state: State, params: Params, op: Op) -> Plan:
    """MAP_FIXED_NOREPLACE is taken to be the bit 0x200000: a request with Linux's 0x100000 is
    not recognized and degrades to a hint (MAP_FIXED alongside it still clobbers), and a request
    carrying 0x200000, a bit Linux ignores on x86-64 (a plain hint), is treated as a probe."""
    if op.kind != "mmap" or not op.flags & (MAP_FIXED_NOREPLACE | ALPHA_NOREPLACE):
        return plan(state, params, op)
    flags = op.flags & ~(MAP_FIXED_NOREPLACE | ALPHA_NOREPLACE)
    if op.flags & ALPHA_NOREPLACE:
        flags |= MAP_FIXED_NOREPLACE
    return plan(state, params, attrs.evolve(op, flags=flags))


def enomem_below_min(state: State, params: Params, op: Op) -> Plan:
    """A fixed mapping below vm.mmap_min_addr without CAP_SYS_RAWIO fails with ENOMEM (the
    address treated as out of range) where Linux says EPERM."""
    decided = plan(state, params, op)
    if decided.result == -EPERM and is_fixed(op):
        return Plan(-ENOMEM)
    return decided


def lost_unmap(state: State, params: Params, op: Op) -> Plan:
    """munmap removes the mappings of its range while iterating over them, and each removal
    makes the walk skip the next one: every second mapping of the range stays mapped, and the
    call returns 0."""
    decided = plan(state, params, op)
    if op.kind == "munmap" and decided.result == 0 and len(decided.changes) > 1:
        return Plan(0, decided.changes[::2])
    return decided
