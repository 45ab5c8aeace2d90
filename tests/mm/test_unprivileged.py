"""The unprivileged rules (mmap rule 11 and the two minimum addresses), tested for real.

The kernel side runs in a child process without CAP_SYS_RAWIO -- dropped either by
`setpriv --inh-caps=-sys_rawio --bounding-set=-sys_rawio` before exec, or by the child itself
with `mm.kernel.drop_cap_sys_rawio()` (capset) -- inside a verified-free low arena [0, 0x20000).
Its results must equal the model's with `privileged=False` and this host's parameters. No sysctl
is ever changed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

import pytest

import mm
from mm import NR, Op, Params
from mm.kernel import host_params
from tests.helpers import P, needs_linux, run_model

pytestmark = [needs_linux, pytest.mark.kernel]

PA = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS
RW = mm.PROT_READ | mm.PROT_WRITE


def ops_for(params: Params) -> list[Op]:
    """The probes: page 0 (EPERM), dac_mmap_min_addr (allowed), hints raised to mmap_min_addr."""
    dac, floor = params.dac_mmap_min_addr, params.mmap_min_addr
    below = max(dac - P, 0)
    return [
        Op.mmap(0, P, RW, NR),  # LB7 unprivileged: EPERM
        Op.mmap(0, P, RW, PA | mm.MAP_FIXED),  # Z1 unprivileged: EPERM
        Op.mmap(below, P, RW, NR),  # just below dac_mmap_min_addr: EPERM
        Op.mmap(dac, P, RW, NR),  # Z2: exactly dac_mmap_min_addr: allowed
        Op.mmap(dac, P, RW, NR),  # ... and now taken: EEXIST (rule 12 after rule 11)
        Op.munmap(dac, P),
        Op.mmap(dac, P, RW, PA | mm.MAP_FIXED),  # MAP_FIXED there too
        Op.munmap(dac, P),
        Op.mmap(0x1000, P, RW, PA),  # a hint below mmap_min_addr is raised to it
        Op.munmap(floor, P),
        Op.mmap(floor - P, P, RW, NR),  # below the LSM floor but above dac: allowed
        Op.mprotect(0, P, mm.PROT_READ),  # nothing at page 0: ENOMEM
        Op.munmap(0, 2 * P),  # munmap does not check the minimum: 0
        Op.munmap(floor - P, P),
    ]


CHILD = r"""
import json, sys
import mm
from mm import kernel
if sys.argv[1] == "capset":
    kernel.drop_cap_sys_rawio()
ops = [mm.Op(**o) for o in json.loads(sys.argv[2])]
try:
    arena = kernel.Arena.reserve(0x20000, base=0)
except kernel.ArenaError as exc:
    print(json.dumps({"skip": str(exc)}))
    raise SystemExit(0)
with arena, kernel.KernelSpace(arena) as space:
    results = [space.apply(op) for op in ops]
    left = [str(r) for r in space.snapshot()]
print(json.dumps({"cap": mm.kernel.has_cap_sys_rawio(), "results": results, "left": left,
                  "params": mm.kernel.host_params().to_json()}))
"""


def run_child(method: str, ops: list[Op]) -> dict[str, Any]:
    payload = json.dumps([{"kind": o.kind, "addr": o.addr, "length": o.length, "prot": o.prot,
                          "flags": o.flags} for o in ops])  # fmt: skip
    cmd = [sys.executable, "-c", CHILD, method, payload]
    if method == "setpriv":
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv is not installed")
        cmd = [setpriv, "--inh-caps=-sys_rawio", "--bounding-set=-sys_rawio", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0 and method == "setpriv" and "setpriv" in out.stderr:
        pytest.skip(f"setpriv cannot drop the capability here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    if "skip" in data:
        pytest.skip(f"the low arena is not free in the child: {data['skip']}")
    return data


# A privileged process tests by dropping CAP_SYS_RAWIO in a child (two ways); an unprivileged
# one is already the case under test and runs the child as it is.
METHODS = ["setpriv", "capset"] if mm.kernel.has_cap_sys_rawio() else ["none"]


@pytest.mark.parametrize("method", METHODS)
def test_unprivileged_kernel_matches_model(method: str) -> None:
    params = host_params(privileged=False)
    ops = ops_for(params)
    child = run_child(method, ops)
    assert child["cap"] is False, "the child still holds CAP_SYS_RAWIO"
    assert child["left"] == [], f"the child left mappings behind: {child['left']}"
    assert Params.from_json(child["params"]) == params
    want, _ = run_model(params, ops)
    got = child["results"]
    lines = [
        f"{op}: kernel {mm.format_result(op.kind, g)}, model {mm.format_result(op.kind, w)}"
        for op, g, w in zip(ops, got, want, strict=True)
    ]
    assert got == want, "\n".join(lines)
    # The facts of the spec page, on this host's numbers.
    assert got[0] == got[1] == got[2] == -mm.EPERM
    assert got[3] == params.dac_mmap_min_addr
    assert got[8] == params.mmap_min_addr


def test_model_privilege_decides_page_zero() -> None:
    """The same probes on the privileged model differ exactly where rule 11 applies."""
    unpriv = host_params(privileged=False)
    ops = ops_for(unpriv)
    low, _ = run_model(unpriv, ops[:3])
    high, _ = run_model(host_params(privileged=True), ops[:3])
    assert low == [-mm.EPERM] * 3
    assert high == [0, 0, -mm.EEXIST]  # MAP_FIXED replaces page 0; NOREPLACE then collides
