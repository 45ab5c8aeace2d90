"""The workload value types: where ranges go (`Space`), what a round runs (`RoundPlan`), how ops are
described (`OpTemplate`), how round outcomes are judged (`Grade`), and the `Workload` itself.

A workload is declarative and frozen; `Workload.plan` expands it, round by round, into concrete
`mm.Op` lists with a pure function of (round, tasks, space, seed), so every process that plans the
same round gets the same ops.
"""

from __future__ import annotations

import errno
import functools
import random
from collections.abc import Mapping, Sequence

import attrs

import mm
from workloads import _expr

ACCEPTABLE = "ACCEPTABLE"
INTERESTING = "INTERESTING"
FORBIDDEN = "FORBIDDEN"
GRADE_VERDICTS = (ACCEPTABLE, INTERESTING, FORBIDDEN)

ANCHORS = ("round", "zero", "min_addr", "task_size")
"""Where an op template's page offset counts from: the round's base inside the arena, address 0,
the space's `min_addr` (the sysctl vm.mmap_min_addr, the lowest address a fixed mapping may use
without CAP_SYS_RAWIO), or the space's `task_size` (the end of user space). Offsets from the last
two may be negative (-2: two pages below), as long as the address stays at or above 0."""

PROBE_LABEL = "probe"

Expr = int | str | tuple[int | str, ...]
"""A per-task integer: a constant, an expression over `task` and `tasks` (``"task*2"``), or a
tuple of those cycled over tasks (task i uses item ``i % len``)."""


@attrs.frozen
class Space:
    """Where a workload may place its ranges: a page-aligned arena, plus the low-address facts."""

    base: int = 0x100000000000
    size: int = 1 << 30
    page_size: int = 4096
    min_addr: int = 4096  # vm.mmap_min_addr (dac_mmap_min_addr): used by anchor "min_addr"
    task_size: int = mm.Params().task_size  # the end of user space: anchor "task_size"

    @classmethod
    def from_params(
        cls, params: mm.Params, *, base: int = 0x100000000000, size: int = 1 << 30
    ) -> Space:
        return cls(base, size, params.page_size, params.dac_mmap_min_addr, params.task_size)

    @property
    def pages(self) -> int:
        return self.size // self.page_size

    @property
    def end(self) -> int:
        return self.base + self.size


@attrs.frozen
class RoundPlan:
    """One round: `setup` (serial, task 0), `tasks` (one op list per task, raced), `cleanup`,
    then `check`: the footprint check, serial after the cleanup (an observer probe of each range
    the round touched, PROT_NONE, and its munmap: the probe must win, or something the round
    mapped is still there).

    `labels[t][k]` names the role of `tasks[t][k]` in outcome keys ("probe", "munmap", ...);
    `base` is the round's contested base address inside the arena.
    """

    setup: tuple[mm.Op, ...]
    tasks: tuple[tuple[mm.Op, ...], ...]
    cleanup: tuple[mm.Op, ...]
    labels: tuple[tuple[str, ...], ...] = ()
    base: int = 0
    check: tuple[mm.Op, ...] = ()

    def label(self, task: int, index: int) -> str:
        if self.labels:
            return self.labels[task][index]
        return default_label(self.tasks[task][index])


def default_label(op: mm.Op) -> str:
    """The role an op plays when its template names none: probe, fixed, hint, munmap, mprotect."""
    if op.kind != "mmap":
        return op.kind
    if mm.is_probe(op):
        return PROBE_LABEL
    if mm.is_fixed(op):
        return "fixed"
    return "hint"


_MAX_PAGES = 1 << 52  # 4 KiB pages in 2^64 bytes


def _pick(value: Expr, field: str, task: int, tasks: int) -> int:
    item = value[task % len(value)] if isinstance(value, tuple) else value
    if isinstance(item, bool):
        raise ValueError(f"{field}: expected an integer, got a boolean")
    if isinstance(item, int):
        return item
    try:
        result = _expr.evaluate(item, {"task": task, "tasks": tasks})
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None
    if isinstance(result, bool):
        raise ValueError(f"{field}: expression {item!r} gives a boolean, not a page count")
    return result


@attrs.frozen
class OpTemplate:
    """One call, described relative to the round: `offset` and `pages` are in pages from `anchor`.

    `tasks` is a selector expression over `task`/`tasks` (which tasks issue this op; default all);
    `label` names the op's role in outcome keys (default from kind and flags).
    """

    kind: str
    offset: Expr = 0
    pages: Expr = 1
    prot: int = mm.PROT_READ | mm.PROT_WRITE
    flags: int = mm.NR
    anchor: str = "round"
    tasks: str = "true"
    label: str | None = None

    def selects(self, task: int, tasks: int) -> bool:
        try:
            return bool(_expr.evaluate(self.tasks, {"task": task, "tasks": tasks}))
        except ValueError as exc:
            raise ValueError(f"tasks: {exc}") from None

    def extent(self, task: int, tasks: int) -> tuple[int, int]:
        """(offset, pages) for `task`; raises ValueError naming the field on a bad value."""
        offset = _pick(self.offset, "offset", task, tasks)
        pages = _pick(self.pages, "pages", task, tasks)
        if offset < 0 and self.anchor in ("round", "zero"):
            raise ValueError(f"offset: {offset} is negative (task {task} of {tasks})")
        if pages < 1:
            raise ValueError(f"pages: {pages} must be at least 1 (task {task} of {tasks})")
        for key, value in (("offset", abs(offset)), ("pages", pages)):
            if value >= _MAX_PAGES:
                raise ValueError(
                    f"{key}: {value} pages is beyond a 64-bit address space (task {task} of "
                    f"{tasks})"
                )
        return offset, pages

    def origin(self, space: Space, base: int) -> int:
        if self.anchor == "round":
            return base
        return {"zero": 0, "min_addr": space.min_addr, "task_size": space.task_size}[self.anchor]

    def op(self, task: int, tasks: int, space: Space, base: int) -> mm.Op:
        return self.build(*self.extent(task, tasks), space, base)

    def build(self, offset: int, pages: int, space: Space, base: int) -> mm.Op:
        """The concrete op for an already evaluated (offset, pages)."""
        addr = self.origin(space, base) + offset * space.page_size
        if addr < 0:
            raise ValueError(f"offset: {offset} pages from {self.anchor} is below address 0")
        length = pages * space.page_size
        if self.kind == "mmap":
            return mm.Op.mmap(addr, length, self.prot, self.flags)
        if self.kind == "munmap":
            return mm.Op.munmap(addr, length)
        return mm.Op.mprotect(addr, length, self.prot)

    def role(self, op: mm.Op) -> str:
        return self.label if self.label is not None else default_label(op)


@attrs.frozen
class Grade:
    """An outcome class: when `when` (a predicate over the round's facts) holds, the round is
    `verdict` (ACCEPTABLE, INTERESTING or FORBIDDEN) for the reason `description`.

    Grades are tried in order; the first that holds decides. Facts are documented in
    docs/workloads.md (counts like `winners`, `eexist`, `munmap_ok`; `tasks`, `privileged`,
    `overlapped`, `first_won`, `disjoint`, `losers_overlap`).
    """

    verdict: str
    when: str
    description: str

    def holds(self, facts: Mapping[str, int | bool]) -> bool:
        """Does `when` hold for a round with these facts? (A count it names that the round lacks
        is 0; the names were checked when the workload was built.)"""
        env = {name: facts.get(name, 0) for name in _expr.names(self.when)}
        return bool(_expr.evaluate(self.when, env))


@attrs.frozen
class Boundary:
    """Where a round sits relative to page-table boundaries: round r places the page `at[r %
    len(at)]` of its footprint on a boundary of `spans[r % len(spans)]` bytes (a power of two,
    e.g. 2 MiB, 1 GiB, 512 GiB), one of those inside the arena or at its ends (seeded), so the
    footprint straddles it. The footprint may then reach beyond the arena by `at` pages below
    and the rest above; `Workload.regions` says so, and the kernel target verifies those pages
    free."""

    spans: tuple[int, ...]
    at: tuple[int, ...] = (0,)

    def pick(self, round_index: int) -> tuple[int, int]:
        """(span in bytes, page of the footprint on the boundary) for a round."""
        return self.spans[round_index % len(self.spans)], self.at[round_index % len(self.at)]

    def candidates(self, span: int, space: Space) -> tuple[int, int]:
        """(first, count): the multiples of `span` in [space.base, space.end]."""
        first = -(-space.base // span) * span
        last = space.end // span * span
        return first, max(0, (last - first) // span + 1)

    def validate(self, footprint: int, space: Space) -> None:
        """ValueError naming the problem: a span that is not a power of two and whole pages, an
        `at` outside the footprint, a span with no boundary in the arena."""
        if not self.spans or not self.at:
            raise ValueError("boundary: spans and at must not be empty")
        for span in self.spans:
            if span <= 0 or span & (span - 1) or span % space.page_size:
                raise ValueError(f"boundary.spans: {span:#x} is not a power of two of whole pages")
            if not self.candidates(span, space)[1]:
                raise ValueError(
                    f"boundary.spans: no {format_span(span)} boundary in the arena "
                    f"[{space.base:#x}, {space.end:#x}]"
                )
        for at in self.at:
            if not 0 <= at <= footprint:
                raise ValueError(
                    f"boundary.at: page {at} is outside the footprint [0, {footprint}]"
                )

    def margins(self, footprint: int, page: int) -> tuple[int, int]:
        """Bytes the footprint may reach below the arena's base and above its end."""
        return max(self.at) * page, max(max(footprint - a for a in self.at), 0) * page


def format_span(span: int) -> str:
    """2097152 -> "2 MiB", 1 << 39 -> "512 GiB"."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if span >= 1 << shift and span % (1 << shift) == 0:
            return f"{span >> shift} {unit}"
    return f"{span} B"


Range = tuple[int, int]


@attrs.frozen
class Workload:
    """A declarative race: op templates for setup, race and cleanup, and the grades of outcomes.

    `cleanup=None` means: munmap the round's footprint (and any page-0 / min_addr / top ranges
    used). `shuffle` permutes which task plays which slot each round (the `task` variable is the
    slot). `boundary` places each round across a page-table boundary instead of at a seeded
    page of the arena. `footprint_check` ends every round with the footprint check
    (`RoundPlan.check`); turn it off for a cleanup that leaves mappings on purpose.
    """

    name: str
    summary: str
    race: tuple[OpTemplate, ...]
    grades: tuple[Grade, ...]
    setup: tuple[OpTemplate, ...] = ()
    cleanup: tuple[OpTemplate, ...] | None = None
    shuffle: bool = False
    boundary: Boundary | None = None
    footprint_check: bool = True

    @property
    def short(self) -> str:
        """The summary's first sentence, for one-line listings."""
        first = self.summary.split(". ", 1)[0].strip()
        return first if first.endswith(".") else first + "."

    def labels(self) -> set[str]:
        """Every role label this workload's race can produce (for validating grade names)."""
        found: set[str] = set()
        for template in self.race:
            if template.label is not None:
                found.add(template.label)
            else:
                probe = mm.Op("mmap", 0, 1, 0, template.flags) if template.kind == "mmap" else None
                found.add(default_label(probe) if probe else template.kind)
        return found

    def span(self, tasks: int) -> int:
        """Pages of the round footprint (round-anchored ops) needed by `tasks` tasks."""
        return _layout(self, tasks).span

    def regions(self, tasks: int, space: Space) -> list[tuple[int, int]]:
        """The [start, end) address ranges any round may change: the arena when the workload has
        round-anchored ops (widened by a `boundary`'s margins), plus each range of the ops
        anchored elsewhere (page 0, min_addr, TASK_SIZE), clipped at TASK_SIZE (a call past it
        fails before it looks at any mapping), merged and sorted."""
        layout = _layout(self, tasks)
        ranges: list[tuple[int, int]] = []
        if layout.span:
            below, above = (0, 0)
            if self.boundary is not None:
                below, above = self.boundary.margins(layout.span, space.page_size)
            ranges.append((max(space.base - below, 0), space.end + above))
        ranges += _low_ranges(layout, space)
        return _merge(ranges)

    def plan(self, round_index: int, tasks: int, space: Space, seed: int) -> RoundPlan:
        """Expand round `round_index` for `tasks` tasks; a pure function of its arguments."""
        if tasks < 1:
            raise ValueError(f"{self.name}: tasks must be at least 1, got {tasks}")
        layout = _layout(self, tasks)
        rng = random.Random(f"{seed}:{round_index}")
        slots = list(range(tasks))
        if self.shuffle:
            rng.shuffle(slots)
        if layout.span > space.pages:
            raise ValueError(
                f"{self.name}: needs {layout.span} pages for {tasks} tasks, "
                f"the arena has {space.pages}"
            )
        if self.boundary is not None:
            try:
                self.boundary.validate(layout.span, space)
            except ValueError as exc:
                raise ValueError(f"{self.name}: {exc}") from None
            span, at = self.boundary.pick(round_index)
            first, count = self.boundary.candidates(span, space)
            base = first + rng.randrange(count) * span - at * space.page_size
        else:
            base = space.base + rng.randrange(space.pages - layout.span + 1) * space.page_size
        setup = tuple(t.build(o, n, space, base) for t, o, n in layout.setup)
        # Many tasks usually ask for the same thing (same-page: all of them): build each
        # distinct op once per round and share the value (ops are immutable).
        built: dict[tuple[int, int, int], mm.Op] = {}

        def build(t: OpTemplate, o: int, n: int) -> mm.Op:
            key = (id(t), o, n)
            op = built.get(key)
            if op is None:
                op = built[key] = t.build(o, n, space, base)
            return op

        per_task = []
        labels = []
        for task in range(tasks):
            mine = layout.race[slots[task]]
            per_task.append(tuple(build(t, o, n) for t, o, n in mine))
            labels.append(layout.labels[slots[task]])
        footprint = _footprint(layout, space, base)
        if self.cleanup is not None:
            cleanup = tuple(t.build(o, n, space, base) for t, o, n in layout.cleanup)
        else:
            cleanup = tuple(mm.Op.munmap(lo, hi - lo) for lo, hi in footprint)
        check = _footprint_check(footprint, space) if self.footprint_check else ()
        return RoundPlan(setup, tuple(per_task), cleanup, tuple(labels), base, check)


def _low_ranges(layout: _Layout, space: Space) -> list[Range]:
    """The page ranges of the ops not anchored at the round, clipped to [0, TASK_SIZE)."""
    ranges = []
    for template, offset, pages in layout.low:
        start = template.origin(space, 0) + offset * space.page_size
        end = min(start + pages * space.page_size, space.task_size)
        if max(start, 0) < end:
            ranges.append((max(start, 0), end))
    return _merge(ranges)


def _footprint(layout: _Layout, space: Space, base: int) -> list[Range]:
    """Every range a round may leave mapped: its round footprint and its low (or top) ranges."""
    ranges = _low_ranges(layout, space)
    if layout.span:
        ranges.append((base, base + layout.span * space.page_size))
    return _merge(ranges)


def _footprint_check(footprint: Sequence[Range], space: Space) -> tuple[mm.Op, ...]:
    """An observer probe (NOREPLACE, PROT_NONE) and its munmap for each footprint range, from
    vm.mmap_min_addr up (below it a probe needs CAP_SYS_RAWIO: those pages go unchecked)."""
    page = space.page_size
    floor = -(-space.min_addr // page) * page
    ops: list[mm.Op] = []
    for lo, hi in footprint:
        lo = max(lo, floor)
        if lo < hi:
            ops += (mm.Op.mmap(lo, hi - lo, mm.PROT_NONE, mm.NR), mm.Op.munmap(lo, hi - lo))
    return tuple(ops)


Placed = tuple[OpTemplate, int, int]  # a template with its evaluated (offset, pages)


@attrs.frozen
class _Layout:
    """A workload evaluated for one task count, independent of the round (cached)."""

    setup: tuple[Placed, ...]
    race: tuple[tuple[Placed, ...], ...]  # per slot
    labels: tuple[tuple[str, ...], ...]  # per slot
    cleanup: tuple[Placed, ...]
    span: int  # pages of the round-anchored footprint
    low: tuple[Placed, ...]  # every op not anchored at the round


@functools.lru_cache(maxsize=128)
def _layout(workload: Workload, tasks: int) -> _Layout:
    setup = tuple((t, *t.extent(0, tasks)) for t in workload.setup)
    cleanup = tuple((t, *t.extent(0, tasks)) for t in workload.cleanup or ())
    race = []
    for slot in range(tasks):
        race.append(
            tuple((t, *t.extent(slot, tasks)) for t in workload.race if t.selects(slot, tasks))
        )
    labels = tuple(tuple(t.role(t.build(o, n, Space(), 0)) for t, o, n in mine) for mine in race)
    every = [*setup, *cleanup, *(p for mine in race for p in mine)]
    span = max((o + n for t, o, n in every if t.anchor == "round"), default=0)
    low = tuple(p for p in every if p[0].anchor != "round")
    return _Layout(setup, tuple(race), labels, cleanup, span, low)


def _merge(ranges: Sequence[Range]) -> list[Range]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(set(ranges)):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


COUNT_NAMES: frozenset[str] = frozenset(
    {"calls", "winners", "moved", "ok", "pending"}
    | {name.lower() for name in errno.errorcode.values()}
)
"""Per-role counts a grade may use: `calls`, `winners` (an mmap got the address it asked for),
`moved` (an mmap succeeded elsewhere), `ok` (munmap/mprotect success), `pending`, and one per errno
(`eexist`, `eperm`, ...). Role `probe` uses the bare names; role R uses `R_winners` etc."""

FLAG_NAMES: frozenset[str] = frozenset(
    {"tasks", "privileged", "overlapped", "first_won", "disjoint", "losers_overlap"}
)
"""Round-wide facts a grade may use (see docs/workloads.md)."""


def fact_names(labels: set[str]) -> set[str]:
    """Every name a grade of a workload with these role labels may use."""
    names = set(FLAG_NAMES) | set(COUNT_NAMES)
    for label in labels - {PROBE_LABEL}:
        names |= {f"{label}_{count}" for count in COUNT_NAMES}
    return names


def check_workload(workload: Workload) -> None:
    """Raise ValueError("key: problem") if the workload is malformed (bad expression, unknown
    grade name, negative offset, ...), by planning it at a few task counts."""
    for i, grade in enumerate(workload.grades):
        if grade.verdict not in GRADE_VERDICTS:
            raise ValueError(
                f"grades[{i}].verdict: {grade.verdict!r} is not one of {', '.join(GRADE_VERDICTS)}"
            )
        try:
            used = _expr.names(grade.when)
        except ValueError as exc:
            raise ValueError(f"grades[{i}].when: {exc}") from None
        facts = fact_names(workload.labels())
        unknown = used - facts
        if unknown:
            raise ValueError(f"grades[{i}].when: unknown name(s) {', '.join(sorted(unknown))}")
        try:  # it must give an answer for any round: no division by a count, no min()
            _expr.check_divisors(grade.when)
            for sample in (0, 1, 7):
                grade.holds(dict.fromkeys(facts, sample))
        except ValueError as exc:
            raise ValueError(f"grades[{i}].when: {exc}") from None
    if workload.boundary is not None:
        try:
            for tasks in (1, 4, 64):
                workload.boundary.validate(workload.span(tasks), Space())
        except ValueError as exc:
            key, _, problem = str(exc).partition(": ")
            raise ValueError(f"{key}: {problem}") from None
    groups = [("setup", workload.setup), ("race", workload.race)]
    groups.append(("cleanup", workload.cleanup or ()))
    for group, templates in groups:
        for i, template in enumerate(templates):
            for tasks in (1, 2, 3, 4, 5, 8, 64):
                slots = range(tasks) if group == "race" else range(1)
                for slot in slots:
                    try:
                        if template.selects(slot, tasks):
                            template.extent(slot, tasks)
                    except ValueError as exc:
                        raise ValueError(f"{group}[{i}].{exc}") from None
