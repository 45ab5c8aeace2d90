"""The content oracle of the kernel and agent targets: setup pages mapped READ|WRITE carry sentinel
bytes that are read back after the race; a page zeroed, replaced or unmapped with no race munmap
or MAP_FIXED to explain it is graded FORBIDDEN, "clobbered", in words. A kernel target made to
clobber for real (NOREPLACE issued as MAP_FIXED, inside the arena) is caught; the real kernel is
not flagged, and the findings reach grading through the round records and the agent protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

import mm
import workloads
from stress.driver import perform
from stress.harness import RunConfig, TargetOptions
from stress.history import read_history
from tests.helpers import LINUX, assert_judged_ok, needs_linux

pytestmark = [pytest.mark.kernel, needs_linux]

if LINUX:
    from mm import kernel as k
    from stress.harness._agent import AgentDied, AgentTarget, _content
    from stress.harness._kernel import KernelTarget

    class ClobberingKernel(KernelTarget):
        """Issues every NOREPLACE mmap as MAP_FIXED (inside the arena: the fence has checked the
        op's range), as a runtime that maps the flag onto MAP_FIXED does; the records keep the
        op asked for."""

        def _bind_one(self, space: Any, op: mm.Op) -> Any:
            fn, args = super()._bind_one(space, op)
            if fn is k.raw_mmap and mm.is_probe(op):
                addr, length, prot, flags, fd, offset = args
                flags = (flags & ~mm.MAP_FIXED_NOREPLACE) | mm.MAP_FIXED
                return fn, (addr, length, prot, flags, fd, offset)
            return fn, args


# The oracle is the kernel target's own Python code whichever engine races; the python engine
# is used here because it overlaps the calls on any machine (these runs must really race to be
# judged OK) and `ClobberingKernel` hooks its Python calls. The native engine: the first test.
OPTIONS = TargetOptions(spec="kernel", seed=3, engine="python")


def run(out: Path, name: str, target: Any, rounds: int = 8) -> dict[str, Any]:
    config = RunConfig(workloads.get(name), name, OPTIONS, 4, rounds, None, out)
    return perform(config, target, check_timeout=30, handle_sigint=False)


def kernel(cls: Any = None) -> Any:
    return (cls or KernelTarget)(OPTIONS)


def round_records(out: Path) -> dict[int, dict[str, Any]]:
    _, reader = read_history(out / "history.jsonl")
    list(reader)
    return reader.rounds


@pytest.mark.parametrize("engine", ["python", "native"])
def test_the_real_kernel_keeps_every_sentinel(tmp_path: Path, engine: str) -> None:
    target = KernelTarget(attrs.evolve(OPTIONS, engine=engine))
    summary = run(tmp_path / "mixed", "mixed", target)
    assert target.describe["engine"] == engine
    assert_judged_ok(summary["exit_code"], summary)
    rounds = round_records(tmp_path / "mixed")
    # pages 0 and 1 of the setup are READ|WRITE and nothing may touch them
    assert [r["content"] for r in rounds.values()] == [{"checked": 2, "changed": []}] * 8


def test_changes_a_race_explains_are_not_clobbers(tmp_path: Path) -> None:
    """churn: munmap and MAP_FIXED of the setup range race the probes; the pages they cover do
    change (zeroed or unmapped), and that is allowed."""
    summary = run(tmp_path / "churn", "churn", kernel(), rounds=12)
    assert summary["verdict"] == "OK", summary["reasons"]
    contents = [r["content"] for r in round_records(tmp_path / "churn").values()]
    changed = {how for c in contents for _, how in c["changed"]}
    assert changed and changed <= {"zeroed", "unmapped"}


def test_a_clobbering_runtime_is_caught_in_words(tmp_path: Path) -> None:
    summary = run(tmp_path / "clobber", "mixed", kernel(ClobberingKernel), rounds=3)
    assert summary["verdict"] == "VIOLATION"
    rows = summary["grading"]["strict"]["outcomes"]
    assert rows and all(r["grade"] == "FORBIDDEN" for r in rows)
    text = rows[0]["description"]
    assert text.startswith("clobbered: the setup page at 0x") and "was zeroed" in text
    assert "no munmap or MAP_FIXED of the race covered it" in text
    assert "probe of [" in text and "won" in text
    assert "clobbered=2" in rows[0]["outcome"]  # both READ|WRITE setup pages
    compat = summary["grading"]["compat"]["outcomes"]
    assert all(r["grade"] == "FORBIDDEN" for r in compat)  # no reading excuses a clobber


def test_the_maps_file_gives_the_same_answers_as_procmap_query(tmp_path: Path) -> None:
    target = kernel()
    original = target._protections

    def via_maps(pages: Any) -> dict[int, int]:
        target._occupancy.close()  # as on a kernel without PROCMAP_QUERY (or under qemu)
        return original(pages)

    target._protections = via_maps
    summary = run(tmp_path / "maps", "mixed", target, rounds=4)
    assert summary["verdict"] == "OK", summary["reasons"]
    contents = [r["content"] for r in round_records(tmp_path / "maps").values()]
    assert contents == [{"checked": 2, "changed": []}] * 4


def test_the_agent_carries_the_findings_through_its_protocol(tmp_path: Path) -> None:
    target = AgentTarget(TargetOptions(spec="agent", seed=3))
    summary = run(tmp_path / "agent", "mixed", target, rounds=3)
    assert summary["verdict"] == "OK", summary["reasons"]
    contents = [r["content"] for r in round_records(tmp_path / "agent").values()]
    assert contents == [{"checked": 2, "changed": []}] * 3


def test_a_malformed_content_report_is_a_protocol_error() -> None:
    assert _content(None) is None
    good = {"checked": 1, "changed": [[4096, "zeroed"]]}
    assert _content(json.loads(json.dumps(good))) == good
    for bad in ({"checked": "1", "changed": []}, {"checked": 1}, {"checked": 1, "changed": [1]}):
        with pytest.raises(AgentDied, match="malformed content report"):
            _content(bad)
