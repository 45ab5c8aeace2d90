"""The static native agent under qemu-user: a runtime that cannot run Python is judged too.

qemu-x86_64 before 8.1 treats MAP_FIXED_NOREPLACE as a hint (a colliding probe moves: strict
FORBIDDEN, a VIOLATION; compat OK); 8.1 and later implement it (judged OK, or UNKNOWN only for
want of a real race). Each qemu found is run: the one on PATH (Debian's 7.2) and one unpacked
into /opt/qemu10 (bookworm-backports' 10.0, see .ci); skipped, with the reason, when absent.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import RunResult
from tests.helpers import assert_judged_ok

QEMUS = {"path": shutil.which("qemu-x86_64"), "opt": "/opt/qemu10/usr/bin/qemu-x86_64"}
pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or platform.machine() != "x86_64",
        reason="runs the x86-64 native agent under qemu-x86_64 on Linux",
    ),
]


def version(qemu: str) -> tuple[int, int]:
    text = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"version (\d+)\.(\d+)", text)
    assert found, text
    return int(found.group(1)), int(found.group(2))


@pytest.mark.parametrize("where", sorted(QEMUS))
def test_native_agent_is_judged_under_qemu(
    where: str, mmrace_run: Callable[..., RunResult], capsys: pytest.CaptureFixture[str]
) -> None:
    qemu = QEMUS[where]
    if qemu is None or not Path(qemu).is_file():
        pytest.skip(f"qemu-x86_64 ({where}) is not installed")
    argv = ["same-page", "--target", "agent", "--agent", "native", "--wrapper", qemu]
    code, summary = mmrace_run(*argv, "--tasks", "4", "--rounds", "60", "--seed", "3")
    assert summary["problems"] == [], capsys.readouterr()
    info = summary["target_info"]
    assert info["agent"]["kind"] == "native" and info["agent"]["python"] is None
    grading = summary["grading"]
    if version(qemu) < (8, 1):
        assert (code, summary["verdict"]) == (1, "VIOLATION")
        assert grading["strict"]["verdict"] == "VIOLATION"  # moved probes: FORBIDDEN rounds
        assert grading["compat"]["verdict"] == "OK"  # qemu's own lock keeps one winner
    else:
        assert_judged_ok(code, summary)
