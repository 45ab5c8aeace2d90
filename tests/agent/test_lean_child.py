"""The lean agent child: standard library only, and the same rules as `mm.kernel` on this host."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mm
from mm import kernel as k

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux"),
]

if sys.platform.startswith("linux"):
    from stress.agent import _child, _space

ROOT = Path(__file__).resolve().parents[2]
B = 0x100000000000
P = 4096
HEAVY = ("trio", "attrs", "msgspec", "mm", "workloads", "stress.harness", "stress.history")
SESSION = [
    {"type": "open", "tasks": 2, "space": {"base": B, "size": 1 << 24, "page_size": P}},
    {"type": "round", "round": 0, "mode": "race", "plans": [[["mmap", B, P, 3, mm.NR]]] * 2},
    {"type": "round", "round": 0, "mode": "serial", "plans": [[["munmap", B, P, 0, 0]]]},
    {"type": "bye"},
]


def test_a_whole_session_imports_nothing_heavy() -> None:
    """`-X importtime` lists every module the child imports, start-up and session included."""
    stdin = "".join(json.dumps(m) + "\n" for m in SESSION)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stress.agent"],
        input=stdin.encode(),
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["type"] for a in answers] == ["hello", "ready", "result", "result", "bye"]
    assert sorted(r[0][0] for r in answers[2]["records"]) == [-mm.EEXIST, B]
    imported = {
        line.split("|")[-1].strip()
        for line in done.stderr.decode().splitlines()
        if line.startswith("import time:")
    }
    assert "stress.agent._child" in imported
    heavy = {m for m in imported if any(m == h or m.startswith(h + ".") for h in HEAVY)}
    assert heavy == set()


def test_after_start_up_sys_modules_holds_none_of_them() -> None:
    code = (
        "import io, json, sys\n"
        "from stress.agent import _child\n"
        "_child.serve(io.BytesIO(b''), io.BytesIO())\n"
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_hello_params_are_the_host_params() -> None:
    assert _child.hello()["params"] == k.host_params().to_json()
    assert mm.Params.from_json(_child.hello()["params"]) == k.host_params()


ops = st.builds(
    lambda kind, addr, length, prot, flags: mm.Op(kind, addr, length, prot, flags),
    st.sampled_from(["mmap", "munmap", "mprotect"]),
    st.one_of(st.integers(0, 1 << 64), st.sampled_from([0, P, B, B + 1, (1 << 47) - P])),
    st.one_of(st.integers(0, 1 << 64), st.sampled_from([0, 1, P, P + 1, 1 << 47])),
    st.integers(0, 7),
    st.sampled_from([mm.NR, mm.MAP_PRIVATE | mm.MAP_ANONYMOUS, mm.MAP_FIXED | 0x22]),
)


@settings(max_examples=400, deadline=None)
@given(ops)
def test_the_fence_guards_what_mm_kernel_guards(op: mm.Op) -> None:
    wire = (op.kind, op.addr, op.length, op.prot, op.flags)
    assert _space.guarded(wire) == k.guarded_range(op, P)


def test_a_call_on_mapped_memory_outside_the_arenas_is_refused() -> None:
    buf = ctypes.create_string_buffer(P)  # mapped: the interpreter's own heap
    space = _space.Space()
    with pytest.raises(_space.Refused, match="cannot be claimed"):
        space.bind(("mmap", ctypes.addressof(buf), P, 3, mm.MAP_FIXED | 0x22))
    assert space.arenas == []
    assert space.bind(("mmap", 0, P, 3, 0x22))[0] is _space.sys_mmap  # non-fixed: harmless


def test_foreign_mappings_in_the_arena_are_reported_once() -> None:
    space = _space.Space()
    space.reserve(B, B + 16 * P)
    try:
        ours = space.bind(("mmap", B, P, 0, mm.NR))
        space.note([("mmap", B, P, 0, mm.NR)], [ours[0](*ours[1])])
        assert space.foreign() == []
        assert k.raw_mmap(B + 8 * P, P, 0, mm.NR) == B + 8 * P  # someone else's mapping
        found = space.foreign()
        assert found == [
            f"interference: [{B + 8 * P:#x}, {B + 9 * P:#x}) is mapped inside the arena but "
            "this run never mapped it"
        ]
        assert space.foreign() == []  # reported once
    finally:
        k.raw_munmap(B + 8 * P, P)
        space.close()
    assert not [r for r in k.read_maps() if r.start < B + 16 * P and r.end > B]


def test_a_busy_arena_is_refused_with_the_mapping_named() -> None:
    assert k.raw_mmap(B, P, 0, mm.NR) == B
    try:
        with pytest.raises(_space.Refused, match=r"is not free: 100000000000-100000001000"):
            _space.Space().reserve(B, B + 4 * P)
    finally:
        k.raw_munmap(B, P)
