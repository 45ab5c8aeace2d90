"""Each bug variant misbehaves exactly as its description says, and the correct core does not.

Spec-level variants are driven by a sequential script (any schedule shows them). Concurrency
variants are driven by a deterministic two-task interleaving: task A pauses at a named yield
point until task B has either finished or blocked on the core's lock, in both flavours (trio
tasks and OS threads), so the correct core (lock held across the window) serialises them and
the variant (lock dropped) lets B run inside A's window.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
import trio

import mm
import mm.variants as variants
from mm import Op, Params, State
from mm import _variants_run as vrun

P = 4096
B = 0x100000000000
RW = mm.PROT_READ | mm.PROT_WRITE
FIXED = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS | mm.MAP_FIXED
NR = mm.NR
PMD = B + (2 << 20)  # a 2 MiB boundary
ALPHA = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS | 0x200000  # the bit Alpha uses for NOREPLACE
PRIV = Params.reference(privileged=True)
UNPRIV = Params.reference(privileged=False)


def nr(addr: int, pages: int = 1, prot: int = RW) -> Op:
    return Op.mmap(addr, pages * P, prot, NR)


def fixed(addr: int, pages: int = 1, prot: int = RW) -> Op:
    return Op.mmap(addr, pages * P, prot, FIXED)


def run_threads_core(core: mm.ThreadCore, ops: Sequence[Op]) -> list[int]:
    return [core.apply(op) for op in ops]


async def run_trio_core(core: mm.TrioCore, ops: Sequence[Op]) -> list[int]:
    return [await core.apply(op) for op in ops]


# --- registry ---------------------------------------------------------------------------------


def test_registry_names_and_descriptions() -> None:
    expected = {
        "check-then-act",
        "start-only-overlap",
        "flag-ignored",
        "zero-einval",
        "zero-fixed-elsewhere",
        "adjacent-overlap",
        "noreplace-clobbers",
        "one-min-addr",
        "overlap-before-checks",
        "mprotect-all-or-nothing",
        "rollback-window",
        "munmap-nonatomic",
        "two-phase-protect",
        "stride-skip-overlap",
        "wrong-flag-value",
        "enomem-below-min",
        "lost-unmap",
    }
    assert set(variants.names()) == expected
    for name in variants.names():
        v = variants.get(name)
        assert v.name == name and v.summary and "\n" not in v.summary
        assert variants.describe(name) == v.summary
        assert issubclass(v.trio, mm.TrioCore) and issubclass(v.threads, mm.ThreadCore)
        assert name in (v.trio.__doc__ or "") or v.summary in (v.trio.__doc__ or "")
    with pytest.raises(KeyError, match="unknown variant"):
        variants.get("no-such-bug")


def test_harness_resolves_variants_for_both_flavours() -> None:
    from stress.harness._variants import core_factory

    for name in variants.names():
        assert core_factory(name, "trio") is variants.get(name).trio
        assert core_factory(name, "threads") is variants.get(name).threads


# --- spec-level variants: sequential scripts ---------------------------------------------------

# (variant, params, setup ops, probe op, correct result, variant result; "elsewhere": an address
# other than the one asked for)
SPEC_CASES: list[tuple[str, Params, tuple[Op, ...], Op, int | str, int | str]] = [
    ("start-only-overlap", PRIV, (fixed(B + P, 3),), nr(B, 5), -mm.EEXIST, B),  # KS3
    ("start-only-overlap", PRIV, (fixed(B + P, 3),), nr(B, 2), -mm.EEXIST, B),  # KS6
    ("flag-ignored", PRIV, (fixed(B),), nr(B), -mm.EEXIST, "elsewhere"),
    ("zero-einval", UNPRIV, (), nr(0), -mm.EPERM, -mm.EINVAL),  # LB7
    ("zero-einval", PRIV, (), nr(0), 0, -mm.EINVAL),
    ("zero-fixed-elsewhere", UNPRIV, (), fixed(0), -mm.EPERM, "elsewhere"),  # Z1
    ("zero-fixed-elsewhere", PRIV, (), fixed(0), 0, "elsewhere"),
    ("zero-fixed-elsewhere", UNPRIV, (), nr(0), -mm.EPERM, "elsewhere"),
    ("adjacent-overlap", PRIV, (fixed(B + P, 3),), nr(B), B, -mm.EEXIST),  # KS7
    ("adjacent-overlap", PRIV, (fixed(B, 4),), nr(B + 4 * P), B + 4 * P, -mm.EEXIST),  # KS8
    ("noreplace-clobbers", PRIV, (fixed(B, 1, mm.PROT_NONE),), nr(B), -mm.EEXIST, B),  # GV2
    ("one-min-addr", UNPRIV, (), nr(0x1000), 0x1000, -mm.EPERM),  # Z2
    ("one-min-addr", UNPRIV, (), fixed(0x1000), 0x1000, -mm.EPERM),
    ("overlap-before-checks", PRIV, (fixed(B),), Op.mmap(B + 1, P, RW, NR), -mm.EINVAL, -mm.EEXIST),
    ("overlap-before-checks", UNPRIV, (fixed(B),), nr(B - P, 2), -mm.EEXIST, -mm.EEXIST),
    # a mapping just past a 2 MiB boundary, inside a probe that starts two pages before it
    ("stride-skip-overlap", PRIV, (fixed(PMD),), nr(PMD - 2 * P, 4), -mm.EEXIST, PMD - 2 * P),
    ("stride-skip-overlap", PRIV, (fixed(PMD - P),), nr(PMD - 2 * P, 4), -mm.EEXIST, -mm.EEXIST),
    ("stride-skip-overlap", PRIV, (fixed(PMD),), nr(PMD, 4), -mm.EEXIST, -mm.EEXIST),  # aligned
    ("stride-skip-overlap", PRIV, (fixed(PMD + P),), nr(PMD - P, 4), -mm.EEXIST, PMD - P),
    ("wrong-flag-value", PRIV, (fixed(B),), nr(B), -mm.EEXIST, "elsewhere"),
    ("wrong-flag-value", PRIV, (fixed(B),), Op.mmap(B, P, RW, ALPHA), "elsewhere", -mm.EEXIST),
    ("enomem-below-min", UNPRIV, (), nr(0), -mm.EPERM, -mm.ENOMEM),
    ("enomem-below-min", UNPRIV, (), fixed(0), -mm.EPERM, -mm.ENOMEM),
    ("enomem-below-min", PRIV, (), nr(0), 0, 0),  # with CAP_SYS_RAWIO: Linux's result
]


def _spec_run(core: Any, setup: Sequence[Op], op: Op) -> tuple[int, State]:
    for s in setup:
        assert core.apply(s) >= 0
    return core.apply(op), core.state


@pytest.mark.parametrize(("name", "params", "setup", "op", "good", "bad"), SPEC_CASES)
def test_spec_variant_sequential(
    name: str, params: Params, setup: tuple[Op, ...], op: Op, good: int | str, bad: int | str
) -> None:
    got_good, good_state = _spec_run(mm.ThreadCore(params), setup, op)
    _expect(got_good, good, op, good_state)
    variant = variants.get(name)
    assert variant.kind == variants.SPEC
    got_bad, bad_state = _spec_run(variant.threads(params), setup, op)
    _expect(got_bad, bad, op, bad_state)
    if got_good == got_bad:  # a case that shows the variant keeps the spec's behaviour
        assert good_state == bad_state


def _expect(got: int, expected: int | str, op: Op, state: State) -> None:
    if expected == "elsewhere":
        assert got >= 0 and got != op.addr
        assert state.at(got) is not None
    else:
        assert got == expected


def test_start_only_overlap_clobbers_the_tail_mapping() -> None:
    core = variants.get("start-only-overlap").threads(PRIV)
    core.apply(fixed(B + P, 3, mm.PROT_NONE))
    assert core.apply(nr(B, 2, mm.PROT_READ)) == B  # JH1: the old mapping loses page B+P
    assert core.state.at(B + P).prot == mm.PROT_READ  # type: ignore[union-attr]
    assert core.apply(nr(B + 2 * P)) == -mm.EEXIST  # a mapping covering the start still counts


def test_mprotect_all_or_nothing_keeps_the_prefix_unchanged() -> None:
    setup = (fixed(B), fixed(B + 2 * P))
    op = Op.mprotect(B, 3 * P, mm.PROT_READ)
    good, good_state = _spec_run(mm.ThreadCore(PRIV), setup, op)
    bad, bad_state = _spec_run(variants.get("mprotect-all-or-nothing").threads(PRIV), setup, op)
    assert good == bad == -mm.ENOMEM
    assert good_state.at(B).prot == mm.PROT_READ  # type: ignore[union-attr]
    assert bad_state.at(B).prot == RW  # type: ignore[union-attr]


def test_lost_unmap_keeps_every_second_mapping_and_returns_zero() -> None:
    setup = (fixed(B, 1, mm.PROT_READ), fixed(B + P, 1, RW), fixed(B + 2 * P, 1, mm.PROT_READ))
    op = Op.munmap(B, 3 * P)
    good, good_state = _spec_run(mm.ThreadCore(PRIV), setup, op)
    bad, bad_state = _spec_run(variants.get("lost-unmap").threads(PRIV), setup, op)
    assert good == bad == 0
    assert good_state == State.empty()
    assert [(m.start, m.end) for m in bad_state] == [(B + P, B + 2 * P)]
    one, one_state = _spec_run(variants.get("lost-unmap").threads(PRIV), (fixed(B, 3),), op)
    assert one == 0 and one_state == State.empty()  # a single mapping goes as it should


def test_stride_walk_sees_whatever_lies_at_or_above_the_start_offset() -> None:
    from mm._variants_plans import PMD_SPAN, _walk_sees

    def state(*pages: int) -> State:
        return State.of(mm.Mapping(a, a + P, RW, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS) for a in pages)

    start, end = PMD - 2 * P, PMD + 2 * P
    assert not _walk_sees(state(PMD), start, end, PMD_SPAN)
    assert not _walk_sees(state(PMD + P), start, end, PMD_SPAN)
    assert _walk_sees(state(PMD - P), start, end, PMD_SPAN)
    assert _walk_sees(state(PMD - 2 * P), start, end, PMD_SPAN)
    # a long request: the second step lands at the same offset in the next block
    assert _walk_sees(state(PMD + PMD_SPAN - 2 * P), start, PMD + PMD_SPAN, PMD_SPAN)
    assert not _walk_sees(state(PMD + 5 * P), start, PMD + PMD_SPAN, PMD_SPAN)


async def test_spec_variants_behave_the_same_in_the_trio_flavour() -> None:
    for name, params, setup, op, _good, bad in SPEC_CASES:
        core = variants.get(name).trio(params)
        for s in setup:
            await core.apply(s)
        got = await core.apply(op)
        _expect(got, bad, op, core.state)


# --- the correct script is the built-in core ---------------------------------------------------

SCRIPT = (
    fixed(B, 4),
    nr(B + P),
    Op.munmap(B + P, P),
    nr(B + P, 1, mm.PROT_READ),
    Op.mprotect(B, 3 * P, mm.PROT_NONE),
    Op.munmap(B, 8 * P),
    Op.mmap(0x1000, P, RW, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS),
    nr(0),
)


CONCURRENT = [n for n in variants.names() if variants.get(n).kind == variants.CONCURRENCY]


@pytest.mark.parametrize("name", ["correct", *CONCURRENT])
def test_sequential_script_matches_spec_for_concurrency_variants(name: str) -> None:
    """Alone, a concurrency variant is the spec (spec-level ones differ by design)."""
    variant = variants.CORRECT if name == "correct" else variants.get(name)
    base = mm.ThreadCore(UNPRIV)
    expected = run_threads_core(base, SCRIPT)
    core = variant.threads(UNPRIV)
    assert run_threads_core(core, SCRIPT) == expected
    assert core.state == base.state


# --- concurrency variants: deterministic interleavings ----------------------------------------


class WatchedTrioLock:
    """A trio.Lock that tells when someone had to wait for it."""

    def __init__(self) -> None:
        self.lock = trio.Lock()
        self.contended = trio.Event()

    async def __aenter__(self) -> None:
        if self.lock.locked():
            self.contended.set()
        await self.lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.lock.release()


class WatchedThreadLock:
    """A threading.Lock that tells when someone had to wait for it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.contended = threading.Event()

    def __enter__(self) -> None:
        if not self.lock.acquire(blocking=False):
            self.contended.set()
            self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


async def pause_race_trio(
    cls: type[mm.TrioCore],
    setup: Sequence[Op],
    a_ops: Sequence[Op],
    b_ops: Sequence[Op],
    window: str,
) -> tuple[list[int], list[int], State]:
    """A runs until yield point `window`, where it waits for B to finish or to block."""
    lock = WatchedTrioLock()
    core = cls(PRIV, lock=lock)
    await run_trio_core(core, setup)
    a_at_window, a_done, b_done = trio.Event(), trio.Event(), trio.Event()
    out_a: list[int] = []
    out_b: list[int] = []

    async def a_hook(name: str) -> None:
        if name == window and not a_at_window.is_set():
            a_at_window.set()
            async with trio.open_nursery() as nursery:

                async def wait(event: trio.Event) -> None:
                    await event.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(wait, b_done)
                nursery.start_soon(wait, lock.contended)

    async def task_a() -> None:
        mm.set_async_yield_hook(a_hook)
        out_a.extend(await run_trio_core(core, a_ops))
        a_done.set()

    async def task_b() -> None:
        async with trio.open_nursery() as nursery:

            async def wait(event: trio.Event) -> None:
                await event.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait, a_at_window)
            nursery.start_soon(wait, a_done)
        out_b.extend(await run_trio_core(core, b_ops))
        b_done.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(task_a)
            nursery.start_soon(task_b)
    return out_a, out_b, core.state


def pause_race_threads(
    cls: type[mm.ThreadCore],
    setup: Sequence[Op],
    a_ops: Sequence[Op],
    b_ops: Sequence[Op],
    window: str,
) -> tuple[list[int], list[int], State]:
    """The same choreography with two OS threads."""
    lock = WatchedThreadLock()
    core = cls(PRIV, lock=lock)
    run_threads_core(core, setup)
    a_at_window, b_done = threading.Event(), threading.Event()
    go = threading.Event()  # set when B finished or blocked
    out_a: list[int] = []
    out_b: list[int] = []

    def a_hook(name: str) -> None:
        if name == window and not a_at_window.is_set():
            a_at_window.set()
            while not go.wait(0.001):
                if lock.contended.is_set():
                    break

    def task_a() -> None:
        mm.set_yield_hook(a_hook)
        try:
            out_a.extend(run_threads_core(core, a_ops))
        finally:
            a_at_window.set()

    def task_b() -> None:
        a_at_window.wait(10)
        try:
            out_b.extend(run_threads_core(core, b_ops))
        finally:
            b_done.set()
            go.set()

    threads = [threading.Thread(target=task_a), threading.Thread(target=task_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads), "choreography hung"
    return out_a, out_b, core.state


# (variant, setup, A's ops, B's ops, A's window in the variant, correct (A, B), variant (A, B))
X = B + 8 * P
TWO_PARTS = (fixed(B, 1, mm.PROT_READ), fixed(B + P, 1, RW))
RACES: list[tuple[str, tuple[Op, ...], tuple[Op, ...], tuple[Op, ...], str, Any, Any]] = [
    (
        "check-then-act",
        (),
        (nr(X),),
        (nr(X),),
        mm._yield.MMAP_CHECKED,
        ([X], [-mm.EEXIST]),
        ([X], [X]),
    ),
    (
        "rollback-window",
        (),
        (nr(X),),
        (nr(X),),
        vrun.MMAP_ACCOUNT,
        ([X], [-mm.EEXIST]),
        ([-mm.ENOMEM], [-mm.EEXIST]),
    ),
    (
        "two-phase-protect",
        (),
        (nr(X, 1, mm.PROT_READ),),
        (Op.munmap(X, P),),
        vrun.MMAP_PROTECT,
        ([X], [0]),
        ([-mm.ENOMEM], [0]),
    ),
    (
        "munmap-nonatomic",
        TWO_PARTS,
        (Op.munmap(B, 2 * P),),
        (nr(B), nr(B + P)),
        mm._yield.MUNMAP_STEP,
        ([0], [B, B + P]),
        ([0], [B, -mm.EEXIST]),
    ),
]
CORRECT_WINDOW = {"mmap": mm._yield.MMAP_CHECKED, "munmap": mm._yield.MUNMAP_STEP}


@pytest.mark.parametrize("case", RACES, ids=[c[0] for c in RACES])
def test_concurrency_variant_threads(case: Any) -> None:
    name, setup, a_ops, b_ops, window, good, bad = case
    correct_window = CORRECT_WINDOW[a_ops[0].kind]
    for cls in (mm.ThreadCore, variants.CORRECT.threads):
        a, b, _ = pause_race_threads(cls, setup, a_ops, b_ops, correct_window)
        assert (a, b) == good
    variant = variants.get(name)
    assert variant.kind == variants.CONCURRENCY
    a, b, state = pause_race_threads(variant.threads, setup, a_ops, b_ops, window)
    assert (a, b) == bad
    _check_final_state(name, state)


@pytest.mark.parametrize("case", RACES, ids=[c[0] for c in RACES])
async def test_concurrency_variant_trio(case: Any) -> None:
    name, setup, a_ops, b_ops, window, good, bad = case
    correct_window = CORRECT_WINDOW[a_ops[0].kind]
    for cls in (mm.TrioCore, variants.CORRECT.trio):
        a, b, _ = await pause_race_trio(cls, setup, a_ops, b_ops, correct_window)
        assert (a, b) == good
    a, b, state = await pause_race_trio(variants.get(name).trio, setup, a_ops, b_ops, window)
    assert (a, b) == bad
    _check_final_state(name, state)


def _check_final_state(name: str, state: State) -> None:
    if name == "check-then-act":  # two "winners", one mapping
        assert [(m.start, m.end) for m in state] == [(X, X + P)]
    elif name in ("rollback-window", "two-phase-protect"):  # the range ends free
        assert not state.intersects(X, X + P)
    else:  # munmap-nonatomic: B's first page mapped, the second removed after B saw it
        assert [(m.start, m.end) for m in state] == [(B, B + P)]


async def test_rollback_window_without_contention_keeps_the_mapping() -> None:
    core = variants.get("rollback-window").trio(PRIV)
    assert await core.apply(nr(X)) == X
    assert await core.apply(fixed(X, 2)) == X  # MAP_FIXED over it: nothing to roll back
    assert core.state.intersects(X, X + 2 * P)
