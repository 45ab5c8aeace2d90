"""The model against the kernel at the mapping-count limit (vm.max_map_count), for real.

A child process fills a far arena with isolated one-page mappings until mmap fails (the count
is then max_map_count + 1, mmap rule 6), optionally frees a few (slack), then makes one call on
a small region of three mappings. The parent reads the child's /proc/PID/maps (so the child
allocates nothing at the limit) and compares result and pages with the model, whose
`max_map_count` is set so that its own count sits at the same distance from the limit. Nothing
global changes: the limit is the host's, reached inside one child process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import mm
from mm import NR, Mapping, Op, State
from mm.kernel import host_params
from tests.helpers import P, needs_linux

pytestmark = [needs_linux, pytest.mark.kernel]

A = 0x300000000000
PA = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS
FIX = PA | mm.MAP_FIXED
REGION = [(A, A + 3 * P, 3), (A + 4 * P, A + 6 * P, 1), (A + 6 * P, A + 8 * P, 3)]
FILL = A + 64 * P
OPS = [
    Op.mprotect(A + P, P, 1),  # two splits
    Op.mprotect(A, P, 1),  # head split
    Op.mprotect(A + 2 * P, P, 1),  # tail split
    Op.mprotect(A + 5 * P, P, 3),  # merges into the next mapping: no split
    Op.mprotect(A + 4 * P, P, 3),  # split (nothing mergeable below)
    Op.mprotect(A, 8 * P, 1),  # first mapping changed, then the hole: ENOMEM
    Op.mprotect(A + 4 * P, 4 * P, 0),  # whole mappings, merging
    Op.munmap(A + P, P),  # two-sided split
    Op.munmap(A, P),  # one-sided split
    Op.mmap(A + P, P, 1, FIX),  # MAP_FIXED inside one mapping
    Op.mmap(A, P, 1, FIX),  # MAP_FIXED over its head
    Op.mmap(A + 12 * P, P, 3, NR),  # a new mapping
    Op.mmap(A + 3 * P, P, 3, NR),  # fills the hole, merging both sides
]
SLACKS = [0, 1, 2, 3]

CHILD = r"""
import json, sys
from mm import kernel as k
A, P, FILL = (int(x) for x in sys.argv[1:4])
region = json.loads(sys.argv[4]); ops = json.loads(sys.argv[5]); slacks = json.loads(sys.argv[6])
NR = 0x100022
arena = k.Arena.reserve(FILL - A + 2 * 70000 * P, base=A)
filled = 0
def free(n):
    global filled
    for _ in range(n):
        filled -= 1
        k.raw_munmap(FILL + 2 * filled * P, P)
for slack in slacks:
    for op in ops:
        free(min(filled, 16))
        k.raw_munmap(A, 16 * P)
        for lo, hi, prot in region:
            assert k.raw_mmap(lo, hi - lo, prot, NR) == lo
        while k.raw_mmap(FILL + 2 * filled * P, P, 1, NR) >= 0:
            filled += 1
        full = filled
        free(slack)
        kind, addr, length, prot, flags = op
        if kind == "mmap":
            r = k.raw_mmap(addr, length, prot, flags)
        elif kind == "munmap":
            r = k.raw_munmap(addr, length)
        else:
            r = k.raw_mprotect(addr, length, prot)
        sys.stdout.write(json.dumps([full, filled, r]) + "\n"); sys.stdout.flush()
        sys.stdin.readline()
free(filled)
k.raw_munmap(A, 16 * P)
"""


def region_pages(pid: int) -> tuple[mm.kernel.Region, ...]:
    """The child's pages in [A, A + 16P), skipping its 65k fill lines by their text prefix."""
    from mm import kernel

    prefix = f"{A:x}"[:-4]  # the 16 pages share every hex digit but the last four
    assert A % (16 * P) == 0 and f"{A + 16 * P - 1:x}".startswith(prefix)
    regions = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        if line.startswith(prefix):
            span, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            prot = sum(bit for bit, c in zip((1, 2, 4), perms[:3], strict=False) if c != "-")
            regions.append(kernel.Region(lo, hi, prot, perms[3] == "s"))
    return kernel.clip_regions(regions, A, A + 16 * P)


def model_case(full: int, now: int, op: Op) -> tuple[int, State]:
    """The model at the kernel's distance from the limit: only the region is modelled, and
    `max_map_count` is lowered by the fill pages it leaves out (the rules compare counts)."""
    import attrs

    state = State.of([Mapping(lo, hi, prot, PA) for lo, hi, prot in REGION])
    # At the limit the kernel's count is max_map_count + 1; `full - now` pages were freed since.
    params = attrs.evolve(host_params(), max_map_count=state.map_count - 1 + (full - now))
    return mm.apply(state, params, op)


def test_model_matches_kernel_at_the_map_count_limit() -> None:
    from mm import kernel

    try:
        kernel.Arena.reserve(FILL - A + 2 * 70000 * P, base=A).release()
    except kernel.ArenaError as exc:
        pytest.skip(f"arena not free: {exc}")
    if host_params().max_map_count > 200_000:
        pytest.skip("vm.max_map_count is too large to reach quickly")
    ops = [[o.kind, o.addr, o.length, o.prot, o.flags] for o in OPS]
    args = [str(A), str(P), str(FILL), json.dumps(REGION), json.dumps(ops), json.dumps(SLACKS)]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parent,
    )
    assert child.stdin is not None and child.stdout is not None
    problems = []
    try:
        for slack in SLACKS:
            for op in OPS:
                line = child.stdout.readline()
                assert line, "the child died"
                full, now, got = json.loads(line)
                pages = region_pages(child.pid)
                child.stdin.write("go\n")
                child.stdin.flush()
                want, after = model_case(full, now, op)
                model_pages = kernel.model_regions(after, A, A + 16 * P)
                if got != want or pages != model_pages:
                    problems.append(
                        f"slack {slack}: {op}: kernel {mm.format_result(op.kind, got)} "
                        f"{list(map(str, pages))}, model {mm.format_result(op.kind, want)} "
                        f"{list(map(str, model_pages))}"
                    )
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not problems, "\n".join(problems)
