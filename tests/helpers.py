"""Shared helpers for the tests that run operations on the model and on the real kernel."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import pytest

import mm
from mm import Op, Params, State

P = 4096
B = 0x100000000000
TASK = (1 << 47) - P
LINUX = sys.platform.startswith("linux")
needs_linux = pytest.mark.skipif(not LINUX, reason="the kernel binding needs Linux")


def run_model(
    params: Params, ops: Sequence[Op], state: State | None = None
) -> tuple[list[int], State]:
    """Apply `ops` in order on the model; the results and the final state."""
    state = State.empty() if state is None else state
    results = []
    for op in ops:
        result, state = mm.apply(state, params, op)
        results.append(result)
    return results, state


@contextmanager
def kernel_space(*ranges: tuple[int, int]) -> Iterator[mm.kernel.KernelSpace]:
    """A KernelSpace over freshly reserved arenas; skips when an arena is not free here."""
    from mm import kernel

    with ExitStack() as stack:
        arenas = []
        for lo, hi in ranges:
            try:
                arenas.append(stack.enter_context(kernel.Arena.reserve(hi - lo, base=lo)))
            except kernel.ArenaError as exc:
                pytest.skip(f"arena not available on this machine: {exc}")
        space = stack.enter_context(kernel.KernelSpace(*arenas))
        yield space
        leftover = space.interference()
        assert not leftover, f"foreign mappings appeared in the arena: {leftover}"
    for lo, hi in ranges:
        # Everything we mapped is gone again once the space is closed.
        assert not kernel.clip_regions(kernel.read_maps(), lo, hi)


def run_kernel(space: mm.kernel.KernelSpace, ops: Sequence[Op]) -> list[int]:
    return [space.apply(op) for op in ops]


def assert_judged_ok(code: int, summary: dict[str, object]) -> None:
    """A correct target's run: the checker and both gradings say OK; the verdict is OK, or
    UNKNOWN for the one reason a correct run can have (no round really raced: on a loaded
    machine with few cores, native threads may never run at the same instant)."""
    assert summary["check"]["verdict"] == "OK", summary["check"]  # type: ignore[index]
    grading = summary["grading"]
    assert grading["strict"]["verdict"] == "OK"  # type: ignore[index]
    assert grading["compat"]["verdict"] == "OK"  # type: ignore[index]
    if summary["overlap"]["rounds"]:  # type: ignore[index]
        assert (code, summary["verdict"]) == (0, "OK"), summary.get("reasons")
    else:
        assert (code, summary["verdict"]) == (3, "UNKNOWN")
        reasons = summary["reasons"]
        assert len(reasons) == 1 and "no round really raced" in reasons[0]  # type: ignore[arg-type,index]
