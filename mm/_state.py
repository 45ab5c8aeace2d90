"""An immutable, hashable address space: the set of mappings with their protections and flags."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator

import attrs

from mm._names import MAP_ANONYMOUS, MAP_GROWSDOWN, MAP_TYPE, format_flags, format_prot

# The flags a mapping keeps (the rest only steer the call).
KEPT_FLAGS = MAP_TYPE | MAP_GROWSDOWN | MAP_ANONYMOUS


@attrs.frozen(order=True, cache_hash=True)
class Mapping:
    """One virtual memory area [start, end) with its protection and kept flags.

    `origin` identifies the object behind a shared mapping (the address of the call that
    created it, plus one) so that pieces of two different shared objects are never merged; it is
    0 for private mappings, which merge with any neighbour of equal protection and flags, as the
    kernel's anonymous mappings do.
    """

    start: int
    end: int
    prot: int
    flags: int
    origin: int = 0

    @property
    def length(self) -> int:
        return self.end - self.start

    def with_range(self, start: int, end: int) -> Mapping:
        return attrs.evolve(self, start=start, end=end)

    def mergeable(self, after: Mapping) -> bool:
        """May `after`, which starts where this one ends, be merged into it?"""
        return (
            self.end == after.start
            and self.prot == after.prot
            and self.flags == after.flags
            and self.origin == after.origin
        )

    def __str__(self) -> str:
        return (
            f"[{self.start:#x}, {self.end:#x}) {format_prot(self.prot)} {format_flags(self.flags)}"
        )


@attrs.frozen(cache_hash=True)
class State:
    """The address space: mappings sorted by start, disjoint, neighbours merged when possible.

    Canonical form makes equal page maps compare (and hash) equal, which the checker's
    memoization relies on. Build new states with `State.of` or the editing helpers; they return
    new values and never mutate.
    """

    mappings: tuple[Mapping, ...] = ()
    _starts: tuple[int, ...] = attrs.field(init=False, eq=False, repr=False, hash=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_starts", tuple(m.start for m in self.mappings))

    @classmethod
    def of(cls, mappings: Iterable[Mapping]) -> State:
        return cls(_normalize(sorted(mappings)))

    @classmethod
    def empty(cls) -> State:
        return _EMPTY

    def __iter__(self) -> Iterator[Mapping]:
        return iter(self.mappings)

    def __len__(self) -> int:
        return len(self.mappings)

    @property
    def map_count(self) -> int:
        return len(self.mappings)

    def overlapping(self, start: int, end: int) -> list[Mapping]:
        """Mappings that intersect [start, end), in address order (touching does not count)."""
        if start >= end:
            return []
        i = bisect_right(self._starts, start) - 1
        if i < 0 or self.mappings[i].end <= start:
            i += 1
        found = []
        while i < len(self.mappings) and self.mappings[i].start < end:
            found.append(self.mappings[i])
            i += 1
        return found

    def intersects(self, start: int, end: int) -> bool:
        if start >= end:
            return False
        i = bisect_right(self._starts, start) - 1
        if i >= 0 and self.mappings[i].end > start:
            return True
        return i + 1 < len(self.mappings) and self.mappings[i + 1].start < end

    def at(self, addr: int) -> Mapping | None:
        i = bisect_right(self._starts, addr) - 1
        if i >= 0 and self.mappings[i].end > addr:
            return self.mappings[i]
        return None

    def without(self, start: int, end: int) -> State:
        """The state with the pages of [start, end) removed (mappings trimmed or split)."""
        if not self.intersects(start, end):
            return self
        kept: list[Mapping] = []
        for m in self.mappings:
            if m.end <= start or m.start >= end:
                kept.append(m)
                continue
            if m.start < start:
                kept.append(m.with_range(m.start, start))
            if m.end > end:
                kept.append(m.with_range(end, m.end))
        return State(_normalize(kept))

    def with_mapping(self, mapping: Mapping) -> State:
        """The state with `mapping` inserted over whatever was there (MAP_FIXED semantics)."""
        base = self.without(mapping.start, mapping.end)
        return State(_normalize([*base.mappings, mapping]))

    def pages(self, page_size: int) -> Iterator[tuple[int, int]]:
        """(page address, prot) for every mapped page: compare with the kernel page by page."""
        for m in self.mappings:
            for addr in range(m.start, m.end, page_size):
                yield addr, m.prot

    def __str__(self) -> str:
        if not self.mappings:
            return "(empty)"
        return ", ".join(str(m) for m in self.mappings)


def _normalize(mappings: Iterable[Mapping]) -> tuple[Mapping, ...]:
    ordered = sorted(mappings)
    merged: list[Mapping] = []
    for m in ordered:
        if m.start >= m.end:
            continue
        if merged and merged[-1].mergeable(m):
            merged[-1] = merged[-1].with_range(merged[-1].start, m.end)
        else:
            merged.append(m)
    return tuple(merged)


_EMPTY = State(())
