"""Bug variants of the mm core: the real bugs MAP_FIXED_NOREPLACE implementations have had.

Each variant exists in both flavours (`variant.trio`, a `TrioCore` subclass, and
`variant.threads`, a `ThreadCore` subclass) built from one definition: a spec-level variant
changes the rules by wrapping the spec's `plan` (mm/_variants_plans.py), a concurrency variant
changes the lock discipline of the call script (mm/_variants_run.py). `get(name)`, `names()`;
`CORRECT` is the built-in cores' behaviour expressed the same way (for comparison in tests).

mmrace must kill every one of them (`mmrace mutants`) and raise no alarm on the correct core.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from mm import _variants_plans as plans
from mm import _variants_run as run
from mm._core import ThreadCore, TrioCore
from mm._op import Op
from mm._params import Params
from mm._spec import Plan
from mm._spec import plan as spec_plan
from mm._state import State

SPEC = "spec"
CONCURRENCY = "concurrency"


@attrs.frozen
class Variant:
    """A named bug: its one-line `summary`, its `origin`, and the two core classes."""

    name: str
    summary: str
    origin: str
    plan: plans.PlanFn = spec_plan
    script: run.ScriptFn = run.correct
    trio: type[TrioCore] = attrs.field(init=False, eq=False, repr=False)
    threads: type[ThreadCore] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        camel = "".join(part.capitalize() for part in self.name.split("-"))
        doc = f"{self.summary}\n\nOrigin: {self.origin}"
        body = {"variant": self, "__doc__": doc, "__module__": __name__}
        object.__setattr__(self, "trio", type(f"{camel}TrioCore", (VariantTrioCore,), body))
        object.__setattr__(self, "threads", type(f"{camel}ThreadCore", (VariantThreadCore,), body))

    @property
    def kind(self) -> str:
        """ "spec" (wrong rules, any schedule shows it) or "concurrency" (a race shows it)."""
        return CONCURRENCY if self.script is not run.correct else SPEC

    def core(self, flavour: str, params: Params, **kwargs: Any) -> TrioCore | ThreadCore:
        """A fresh core of `flavour` ("trio" or "threads")."""
        cls: type[TrioCore] | type[ThreadCore] = self.trio if flavour == "trio" else self.threads
        return cls(params, **kwargs)


class _VariantDecisions:
    """What both flavours of a variant core share: the variant's `plan` decides each call."""

    variant: ClassVar[Variant]
    calls: int
    state: State
    params: Params

    def __init__(self, params: Params, state: State | None = None, lock: Any = None) -> None:
        super().__init__(params, state, lock)  # type: ignore[call-arg]
        self.scratch: dict[str, int] = {}

    def decide(self, op: Op) -> Plan:
        self.calls += 1
        return self.variant.plan(self.state, self.params, op)


class VariantTrioCore(_VariantDecisions, TrioCore):
    """A `TrioCore` whose decisions and call script come from its `variant`."""

    async def apply(self, op: Op) -> int:
        return await run.run_async(self.lock, self.variant.script(self, op))


class VariantThreadCore(_VariantDecisions, ThreadCore):
    """A `ThreadCore` whose decisions and call script come from its `variant`."""

    def apply(self, op: Op) -> int:
        return run.run_sync(self.lock, self.variant.script(self, op))


CORRECT = Variant(
    "correct",
    "the built-in cores' behaviour, written as a variant (no bug)",
    "mm/_core.py",
)

_ALL = (
    Variant(
        "check-then-act",
        "the lock is released between the overlap check and the insertion",
        "the classic TOCTOU of a probe built from a lookup and a separate insert; the kernel "
        "holds mmap_lock for writing across both (spec page, 'Why MAP_FIXED_NOREPLACE exists')",
        script=run.check_then_act,
    ),
    Variant(
        "start-only-overlap",
        "a collision is detected only when a mapping covers the start of the range",
        "Linux 4.17's first implementation (`vma->vm_start <= addr`); fixed in 4.19 by "
        "'mm/mmap.c: don't clobber partially overlapping VMA with MAP_FIXED_NOREPLACE', "
        "commit 7aa867dd8952",
        plan=plans.start_only_overlap,
    ),
    Variant(
        "flag-ignored",
        "the address is treated as a hint (the flag is unknown)",
        "kernels before 4.17, as the 2017 mmap(2) patch warns: a collision returns a "
        "different address instead of failing",
        plan=plans.flag_ignored,
    ),
    Variant(
        "zero-einval",
        "NOREPLACE at address 0 gives EINVAL instead of EPERM",
        "the first revision of LiteBox PR #639 ('Return EINVAL for MAP_FIXED_NOREPLACE with "
        "addr=0'), corrected in review: the right errno is EPERM",
        plan=plans.zero_einval,
    ),
    Variant(
        "zero-fixed-elsewhere",
        "a fixed mapping at address 0 is placed somewhere else",
        "LiteBox before the fix from PR #639's review: get_unmmaped_area returned a free "
        "address when the suggested address was 0 with FIXED_ADDR set",
        plan=plans.zero_fixed_elsewhere,
    ),
    Variant(
        "adjacent-overlap",
        "a mapping that only touches the range counts as an overlap",
        "an off-by-one in the interval test (closed instead of half-open); spec KS7/KS8 and "
        "LiteBox's adjacent cases test exactly this",
        plan=plans.adjacent_overlap,
    ),
    Variant(
        "noreplace-clobbers",
        "NOREPLACE clobbers existing mappings like MAP_FIXED",
        "an implementation that maps the flag onto MAP_FIXED, losing the flag's whole point "
        "(the 2017 man-page patch: it 'never clobbers a pre-existing mapped range')",
        plan=plans.noreplace_clobbers,
    ),
    Variant(
        "one-min-addr",
        "one minimum address serves both the EPERM check and hint rounding",
        "emulators with a single user-address floor (e.g. TASK_ADDR_MIN) instead of Linux's "
        "vm.mmap_min_addr (EPERM) and max(it, CONFIG_LSM_MMAP_MIN_ADDR) (hints); spec Z2",
        plan=plans.one_min_addr,
    ),
    Variant(
        "overlap-before-checks",
        "the overlap check runs before the alignment, range and permission checks",
        "a reordering of the rule table: the kernel checks alignment and range in "
        "get_unmapped_area and the capability before the NOREPLACE lookup",
        plan=plans.overlap_before_checks,
    ),
    Variant(
        "mprotect-all-or-nothing",
        "an mprotect that fails on a hole changes nothing",
        "a plausible 'transactional' mprotect; Linux leaves the walked prefix changed "
        "(mm/mprotect.c, spec mprotect rules 7-8)",
        plan=plans.mprotect_all_or_nothing,
    ),
    Variant(
        "rollback-window",
        "the new mapping is published, then withdrawn when a later step fails",
        "an optimistic accounting step after the insertion (like a charge that fails under "
        "contention, with mmap_region's error path unmapping the new range): a concurrent "
        "probe sees the range taken, then the winner backs out with ENOMEM",
        script=run.rollback_window,
    ),
    Variant(
        "munmap-nonatomic",
        "the lock is dropped between removing two parts of an munmap",
        "an munmap written as a loop of single-mapping removals, each under the lock; Linux "
        "detaches all the VMAs of the range in one critical section",
        script=run.munmap_nonatomic,
    ),
    Variant(
        "two-phase-protect",
        "a mapping is published READ|WRITE and narrowed to its protection under a second lock",
        "LiteBox's create-then-protect path: PageManager::create_readable_pages and "
        "create_executable_pages create the pages READ|WRITE so the initializer can fill them, "
        "then narrow them to the requested permissions (litebox/src/mm/mod.rs); LiteBox holds its "
        "vmem write lock across both, and this variant splits them over two acquisitions, as a "
        "port that releases the lock around the initializer would; a munmap in the window makes "
        "the narrowing fail, and the mmap with it",
        script=run.two_phase_protect,
    ),
    Variant(
        "stride-skip-overlap",
        "the overlap test steps through the request by 2 MiB from an unaligned start",
        "a page-table walk that advances `addr += PMD_SIZE` instead of to the next boundary "
        "(Linux walks with pmd_addr_end() for exactly this reason): from an unaligned start it "
        "misses a mapping just past a 2 MiB boundary (and so past every 1 GiB and 512 GiB one) "
        "and clobbers it; a bug class of runtimes that test occupancy on their own page tables",
        plan=plans.stride_skip_overlap,
    ),
    Variant(
        "wrong-flag-value",
        "the flag is taken as the bit 0x200000 (Linux: 0x100000), so a probe degrades to a hint",
        "a fallback `#ifndef MAP_FIXED_NOREPLACE / #define MAP_FIXED_NOREPLACE 0x200000` (Alpha's "
        "value) for C headers that predate the flag, seen in a RISC-V to x86-64 dynamic binary "
        "translator and in box64's mmap wrapper; glibc defines it only since 2.28",
        plan=plans.wrong_flag_value,
    ),
    Variant(
        "enomem-below-min",
        "a fixed mapping below vm.mmap_min_addr gets ENOMEM where Linux gives EPERM",
        "a sandbox or library OS whose first address-range check treats low addresses as out of "
        "range, or that reports every mmap failure as ENOMEM (Mystikos's syscall layer, "
        "microsoft/mystikos PR #635: 'always translating errors to ENOMEM is probably "
        "incorrect'); Linux checks the capability (security/min_addr.c, cap_mmap_addr) and says "
        "EPERM",
        plan=plans.enomem_below_min,
    ),
    Variant(
        "lost-unmap",
        "an munmap of several mappings keeps every second one and still returns 0",
        "removing mappings from a list while iterating over it: each removal shifts the next "
        "mapping into the slot just visited, which the loop then steps past; a classic container "
        "bug, and a lost unmap is invisible to the caller (the return value is 0) until someone "
        "probes the range",
        plan=plans.lost_unmap,
    ),
)

VARIANTS: dict[str, Variant] = {v.name: v for v in _ALL}


def names() -> tuple[str, ...]:
    """Every bug variant's name, in a fixed order."""
    return tuple(VARIANTS)


def get(name: str) -> Variant:
    """The variant called `name`; KeyError naming the known ones otherwise."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown variant {name!r} (known: {', '.join(VARIANTS)})") from None


def describe(name: str) -> str:
    """The one-line description of variant `name`."""
    return get(name).summary
