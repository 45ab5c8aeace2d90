"""The sequential specification: pure transitions that follow the spec page's rule tables in order.

Every call is split in two: `plan_*` decides the result and the list of changes from a state
(all the checks), and `commit` applies the changes. The pure transitions `mmap`, `munmap` and
`mprotect` do both at once; the lock-protected cores put their yield points between the two, and
the bug variants break exactly there. Rule numbers in comments are those of
../shared/spec/linux-mmap.md.
"""

from __future__ import annotations

import attrs

from mm._names import (
    LEGACY_MAP_MASK,
    MAP_ANONYMOUS,
    MAP_FIXED,
    MAP_FIXED_NOREPLACE,
    MAP_GROWSDOWN,
    MAP_HUGETLB,
    MAP_LOCKED,
    MAP_PRIVATE,
    MAP_SHARED,
    MAP_SHARED_VALIDATE,
    MAP_TYPE,
    PROT_EXEC,
    PROT_READ,
    PROT_SEM,
    PROT_WRITE,
)
from mm._op import Op
from mm._params import Params
from mm._state import KEPT_FLAGS, Mapping, State

EPERM, EBADF, ENOMEM, EEXIST, EINVAL, EOVERFLOW, EOPNOTSUPP = 1, 9, 12, 17, 22, 75, 95
MAX_LFS_FILESIZE = (1 << 63) - 1
U64 = (1 << 64) - 1
MAP_DROPPABLE = 0x08  # anonymous only, Linux 6.12+
PROT_GROWSDOWN = 0x01000000
PROT_GROWSUP = 0x02000000
STACK_GUARD_PAGES = 256


@attrs.frozen
class Change:
    """Replace the pages of [start, end) with `mapping` (None: leave them unmapped)."""

    start: int
    end: int
    mapping: Mapping | None


@attrs.frozen
class Plan:
    """A call's decided outcome: its raw result and the changes that commit it, in order."""

    result: int
    changes: tuple[Change, ...] = ()


def commit(state: State, changes: tuple[Change, ...] | list[Change]) -> State:
    """Apply changes in order; pure."""
    for change in changes:
        state = state.without(change.start, change.end)
        if change.mapping is not None:
            state = state.with_mapping(change.mapping)
    return state


def _fail(errno: int) -> Plan:
    return Plan(-errno)


def page_align(value: int, params: Params) -> int:
    """Round up to a page, wrapping at 2^64 as the kernel's unsigned arithmetic does."""
    mask = params.page_size - 1
    return (value + mask) & ~mask & U64


# --- mmap -----------------------------------------------------------------------------------


def plan_mmap(state: State, params: Params, op: Op) -> Plan:
    """Decide an mmap by the rule table, first failure wins."""
    addr, length, prot, flags = op.addr & U64, op.length & U64, op.prot, op.flags
    page = params.page_size
    if op.offset & (page - 1):  # 1
        return _fail(EINVAL)
    anonymous = bool(flags & MAP_ANONYMOUS)
    if not anonymous and op.fd < 0:  # 2 (the model treats any fd >= 0 as an open file)
        return _fail(EBADF)
    # 2b (found by the kernel differential test): MAP_HUGETLB on a file that is not on
    # hugetlbfs (the model knows no hugetlbfs files) is EINVAL, before the length is looked at.
    if not anonymous and flags & MAP_HUGETLB:
        return _fail(EINVAL)
    if length == 0:  # 3
        return _fail(EINVAL)
    if flags & MAP_FIXED_NOREPLACE:  # 4
        flags |= MAP_FIXED
    fixed = bool(flags & MAP_FIXED)
    if not fixed:
        addr = _round_hint_to_min(addr, params)
    length = page_align(length, params)
    if length == 0:  # 5
        return _fail(ENOMEM)
    if state.map_count > params.max_map_count:  # 6
        return _fail(ENOMEM)
    if length > params.task_size:  # 7
        return _fail(ENOMEM)
    if fixed:
        if addr > params.task_size - length:  # 9
            return _fail(ENOMEM)
        if addr & (page - 1):  # 10
            return _fail(EINVAL)
        if addr < params.dac_mmap_min_addr and not params.privileged:  # 11
            return _fail(EPERM)
        if flags & MAP_FIXED_NOREPLACE and state.intersects(addr, addr + length):  # 12
            return _fail(EEXIST)
    else:
        found = place(state, params, addr, length)
        if found is None:  # 8
            return _fail(ENOMEM)
        addr = found
    map_type = flags & MAP_TYPE
    if anonymous:  # 13
        if map_type not in (MAP_SHARED, MAP_PRIVATE, MAP_DROPPABLE):
            return _fail(EINVAL)
        if map_type == MAP_SHARED and flags & MAP_GROWSDOWN:
            return _fail(EINVAL)
        # 13 (found by the kernel differential test): a droppable mapping may not also be
        # locked, hugetlb or a stack (growsdown); the kernel says EINVAL, after rule 12.
        if map_type == MAP_DROPPABLE and flags & (MAP_LOCKED | MAP_HUGETLB | MAP_GROWSDOWN):
            return _fail(EINVAL)
    else:
        # 13a (found by the kernel differential test): file_mmap_ok() -- the mapped file range
        # [offset, offset + len) must end at or below MAX_LFS_FILESIZE (2^63 - 1): EOVERFLOW.
        offset = op.offset & U64
        if offset > MAX_LFS_FILESIZE or length > MAX_LFS_FILESIZE - offset:
            return _fail(EOVERFLOW)
        if map_type not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
            return _fail(EINVAL)
        if map_type == MAP_SHARED_VALIDATE and flags & ~LEGACY_MAP_MASK:
            return _fail(EOPNOTSUPP)  # 14: MAP_FIXED_NOREPLACE is outside the legacy mask
        # 13b (found by the kernel differential test): a file mapping cannot grow down.
        if flags & MAP_GROWSDOWN:
            return _fail(EINVAL)
    # 15 (RLIMIT_AS) is not modelled: the model's address space has no limit.
    # 16 (found by the kernel differential test at the map-count limit): MAP_FIXED strictly
    # inside one mapping must split it in two, refused while the count is >= max_map_count.
    if fixed and not flags & MAP_FIXED_NOREPLACE:
        inside = state.overlapping(addr, addr + length)
        splits_one = bool(inside) and inside[0].start < addr and inside[0].end > addr + length
        if splits_one and state.map_count >= params.max_map_count:
            return _fail(ENOMEM)
    kept = flags & KEPT_FLAGS
    if map_type == MAP_SHARED_VALIDATE:
        kept = (kept & ~MAP_TYPE) | MAP_SHARED
    origin = addr + 1 if kept & MAP_TYPE == MAP_SHARED or not anonymous else 0
    mapping = Mapping(
        addr, addr + length, prot & (PROT_READ | PROT_WRITE | PROT_EXEC), kept, origin
    )
    return Plan(addr, (Change(addr, addr + length, mapping),))


def _round_hint_to_min(hint: int, params: Params) -> int:
    hint &= ~(params.page_size - 1)
    if hint and hint < params.mmap_min_addr:
        return page_align(params.mmap_min_addr, params)
    return hint


def _hint_is_free(state: State, params: Params, hint: int, length: int) -> bool:
    """The kernel takes a non-zero hint when [hint, hint+len) is free, guard gaps counted."""
    if hint == 0 or hint + length > params.task_size or hint < params.mmap_min_addr:
        return False
    if state.intersects(hint, hint + length):
        return False
    above = state.overlapping(hint + length, params.task_size)
    if above and above[0].flags & MAP_GROWSDOWN:
        gap = STACK_GUARD_PAGES * params.page_size
        if hint + length > above[0].start - gap:
            return False
    return True


def _gaps(state: State, params: Params) -> list[tuple[int, int]]:
    """Free ranges [lo, hi) inside [mmap_min_addr, TASK_SIZE), guard gaps left out."""
    low = page_align(params.mmap_min_addr, params)
    gaps = []
    cursor = low
    gap_below_stack = STACK_GUARD_PAGES * params.page_size
    for m in state.mappings:
        end = m.start - gap_below_stack if m.flags & MAP_GROWSDOWN else m.start
        if end > cursor:
            gaps.append((cursor, min(end, params.task_size)))
        cursor = max(cursor, m.end)
    if params.task_size > cursor:
        gaps.append((cursor, params.task_size))
    return gaps


def place(state: State, params: Params, hint: int, length: int) -> int | None:
    """Deterministic placement: the hint when free, else the highest free range below the
    mmap base (top-down), else the lowest free range (bottom-up), else None (ENOMEM)."""
    if _hint_is_free(state, params, hint, length):
        return hint
    gaps = _gaps(state, params)
    for lo, hi in reversed(gaps):
        top = min(hi, params.mmap_base)
        if top - lo >= length:
            return top - length
    for lo, hi in gaps:
        if hi - lo >= length:
            return lo
    return None


def is_allowed_placement(state: State, params: Params, op: Op, result: int) -> bool:
    """May a successful non-fixed mmap `op` return `result` in `state`?

    Any page-aligned free range inside [mmap_min_addr, TASK_SIZE) is allowed (the kernel's
    choice depends on ASLR), except that the hint must be taken when its range was free.
    """
    if op.flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) or result < 0:
        return False
    length = page_align(op.length & U64, params)
    if length == 0 or result & (params.page_size - 1):
        return False
    if result < params.mmap_min_addr or result + length > params.task_size:
        return False
    if state.intersects(result, result + length):
        return False
    hint = _round_hint_to_min(op.addr & U64, params)
    return not (_hint_is_free(state, params, hint, length) and result != hint)


# --- munmap ---------------------------------------------------------------------------------


def plan_munmap(state: State, params: Params, op: Op) -> Plan:
    """Decide an munmap: one change per mapping it cuts, in address order."""
    addr, length = op.addr & U64, op.length & U64
    if addr & (params.page_size - 1) or addr > params.task_size:  # 1
        return _fail(EINVAL)
    if length > params.task_size - addr:  # 1
        return _fail(EINVAL)
    end = addr + page_align(length, params)
    if end == addr:  # 2
        return _fail(EINVAL)
    hit = state.overlapping(addr, end)
    if not hit:  # 3
        return Plan(0)
    first = hit[0]
    splits_one = first.start < addr and first.end > end
    if splits_one and state.map_count >= params.max_map_count:  # 4
        return _fail(ENOMEM)
    changes = tuple(Change(max(m.start, addr), min(m.end, end), None) for m in hit)
    return Plan(0, changes)


# --- mprotect -------------------------------------------------------------------------------


def plan_mprotect(state: State, params: Params, op: Op) -> Plan:
    """Decide an mprotect; on a hole, the mappings already walked stay changed (rules 7, 8)."""
    addr, length, prot = op.addr & U64, op.length & U64, op.prot
    grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
    prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP)
    if grows == PROT_GROWSDOWN | PROT_GROWSUP:
        return _fail(EINVAL)
    if addr & (params.page_size - 1):  # 1
        return _fail(EINVAL)
    if length == 0:  # 2
        return Plan(0)
    length = page_align(length, params)
    end = addr + length
    if end > U64 or end <= addr:  # 3
        return _fail(ENOMEM)
    if prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM):  # 4
        return _fail(EINVAL)
    hit = state.overlapping(addr, end)
    if not hit:  # 5
        return _fail(ENOMEM)
    if grows & PROT_GROWSDOWN:
        if not hit[0].flags & MAP_GROWSDOWN:
            return _fail(EINVAL)
        addr = hit[0].start
    elif hit[0].start > addr:  # 6
        return _fail(ENOMEM)
    elif grows & PROT_GROWSUP:
        return _fail(EINVAL)  # x86-64 has no VM_GROWSUP
    new_prot = prot & (PROT_READ | PROT_WRITE | PROT_EXEC)
    changes: list[Change] = []
    cursor = addr
    for m in hit:
        if m.start > cursor:  # 7
            return Plan(-ENOMEM, tuple(changes))
        lo, hi = max(m.start, addr), min(m.end, end)
        if _mprotect_split_refused(commit(state, changes), params, lo, hi, new_prot):  # 9
            return Plan(-ENOMEM, tuple(changes))
        changes.append(Change(lo, hi, attrs.evolve(m, start=lo, end=hi, prot=new_prot)))
        cursor = m.end
    if cursor < end:  # 8
        return Plan(-ENOMEM, tuple(changes))
    return Plan(0, tuple(changes))


def _mprotect_split_refused(state: State, params: Params, lo: int, hi: int, prot: int) -> bool:
    """Rule 9 (found by the kernel differential test at the map-count limit): changing
    [lo, hi) inside one mapping splits it, and split_vma() refuses while the mapping count is
    at or above max_map_count. No split when the protection is unchanged, or when the changed
    piece merges into the neighbour on its open side. (A two-split change that fails on its
    second split leaves the kernel one VMA boundary the canonical state cannot show; pages are
    unchanged either way.)"""
    cur = state.at(lo)
    if cur is None or cur.prot == prot:
        return False
    new = attrs.evolve(cur, start=lo, end=hi, prot=prot)
    head, tail = lo > cur.start, hi < cur.end
    if head and tail:
        splits = 2
    elif head:
        after = state.at(hi)
        splits = 0 if after is not None and new.mergeable(after) else 1
    elif tail:
        before = state.at(lo - 1)
        splits = 0 if before is not None and before.mergeable(new) else 1
    else:
        splits = 0
    return splits > 0 and state.map_count + splits - 1 >= params.max_map_count


# --- the pure transitions -------------------------------------------------------------------


def plan(state: State, params: Params, op: Op) -> Plan:
    if op.kind == "mmap":
        return plan_mmap(state, params, op)
    if op.kind == "munmap":
        return plan_munmap(state, params, op)
    if op.kind == "mprotect":
        return plan_mprotect(state, params, op)
    raise ValueError(f"unknown operation kind {op.kind!r}")


def apply(state: State, params: Params, op: Op) -> tuple[int, State]:
    """(result, new state) of one operation."""
    decided = plan(state, params, op)
    return decided.result, commit(state, decided.changes)


def mmap(
    state: State,
    params: Params,
    addr: int,
    length: int,
    prot: int,
    flags: int,
    fd: int = -1,
    offset: int = 0,
) -> tuple[int, State]:
    return apply(state, params, Op.mmap(addr, length, prot, flags, fd=fd, offset=offset))


def munmap(state: State, params: Params, addr: int, length: int) -> tuple[int, State]:
    return apply(state, params, Op.munmap(addr, length))


def mprotect(state: State, params: Params, addr: int, length: int, prot: int) -> tuple[int, State]:
    return apply(state, params, Op.mprotect(addr, length, prot))


def step_observed(state: State, params: Params, op: Op, result: int) -> State | None:
    """The state after `op` returned `result`, or None when the spec cannot give that result.

    Non-fixed successes are judged with `is_allowed_placement`, never by predicting the address.
    """
    decided = plan(state, params, op)
    if decided.result == result:
        return commit(state, decided.changes)
    nonfixed = op.kind == "mmap" and not op.flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)
    if nonfixed and decided.result >= 0 and result >= 0:
        if not is_allowed_placement(state, params, op, result):
            return None
        (change,) = decided.changes
        assert change.mapping is not None
        length = change.end - change.start
        origin = result + 1 if change.mapping.origin else 0
        moved = attrs.evolve(change.mapping, start=result, end=result + length, origin=origin)
        return commit(state, (Change(result, result + length, moved),))
    return None
