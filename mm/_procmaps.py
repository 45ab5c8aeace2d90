"""/proc/self/maps as page regions, and the model's state in the same form.

Comparisons are by pages with protections, not by VMA boundaries: the kernel merges and splits
VMAs on its own terms.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import attrs

from mm._names import MAP_SHARED, MAP_TYPE, PROT_EXEC, PROT_READ, PROT_WRITE
from mm._state import State


@attrs.frozen(order=True)
class Region:
    """Pages [start, end) mapped with `prot`; `shared` for MAP_SHARED (an `s` in maps).

    Neighbours with equal protection and sharing are merged, so a `Region` list describes pages,
    not the kernel's VMA boundaries.
    """

    start: int
    end: int
    prot: int
    shared: bool = False

    def __str__(self) -> str:
        letters = "".join(
            c if self.prot & bit else "-"
            for c, bit in (("r", PROT_READ), ("w", PROT_WRITE), ("x", PROT_EXEC))
        )
        return f"[{self.start:#x}, {self.end:#x}) {letters}{'s' if self.shared else 'p'}"


def read_maps(path: str = "/proc/self/maps") -> list[Region]:
    """Every mapping of this process, unmerged, in address order."""
    regions = []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        perms = fields[1]
        prot = (
            (PROT_READ if perms[0] == "r" else 0)
            | (PROT_WRITE if perms[1] == "w" else 0)
            | (PROT_EXEC if perms[2] == "x" else 0)
        )
        regions.append(Region(lo, hi, prot, perms[3] == "s"))
    return regions


def merge_regions(regions: Iterable[Region]) -> tuple[Region, ...]:
    """Sorted, empty ones dropped, touching neighbours with equal prot and sharing merged."""
    merged: list[Region] = []
    for r in sorted(regions):
        if r.start >= r.end:
            continue
        last = merged[-1] if merged else None
        if last and last.end == r.start and (last.prot, last.shared) == (r.prot, r.shared):
            merged[-1] = attrs.evolve(last, end=r.end)
        else:
            merged.append(r)
    return tuple(merged)


def clip_regions(regions: Iterable[Region], lo: int, hi: int) -> tuple[Region, ...]:
    """The parts of `regions` inside [lo, hi), merged."""
    clipped = (
        attrs.evolve(r, start=max(r.start, lo), end=min(r.end, hi))
        for r in regions
        if r.end > lo and r.start < hi
    )
    return merge_regions(clipped)


def model_regions(state: State, lo: int, hi: int) -> tuple[Region, ...]:
    """The model's pages inside [lo, hi), in the same form as `Arena.snapshot`."""
    return clip_regions(
        (Region(m.start, m.end, m.prot, m.flags & MAP_TYPE == MAP_SHARED) for m in state),
        lo,
        hi,
    )
