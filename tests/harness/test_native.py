"""The native racer: built on first use into the cache, reused, and a clear fallback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import mm

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux"),
]

if sys.platform.startswith("linux"):
    from stress import cbuild
    from stress.harness import TargetOptions, _native
    from stress.harness._kernel import KernelTarget
    from workloads import Space

P = 4096
B = 0x100000000000
SIZE = 1 << 24


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty per-user cache, and no library loaded yet in this process."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(_native, "_library", None)
    return tmp_path / "cache" / "mmrace"


def test_the_build_lands_in_the_cache_and_is_reused(fresh_cache: Path) -> None:
    before = len(cbuild.BUILDS)
    first = _native.build("racer")
    assert first.is_file() and first.is_relative_to(fresh_cache)
    assert len(cbuild.BUILDS) == before + 1  # compiled once
    again = _native.build("racer")
    assert again == first and len(cbuild.BUILDS) == before + 1  # not compiled again
    _native.library()
    assert len(cbuild.BUILDS) == before + 1


def test_a_changed_source_builds_afresh(
    fresh_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _native.build("racer")
    copy = tmp_path / "src"
    copy.mkdir()
    for path in _native.SOURCE_DIR.glob("*.[ch]"):
        (copy / path.name).write_bytes(path.read_bytes())
    (copy / "racer.c").write_text((copy / "racer.c").read_text() + "\n/* changed */\n")
    monkeypatch.setattr(_native, "SOURCE_DIR", copy)
    second = _native.build("racer")
    assert second != first and second.is_file()


async def test_no_compiler_gives_a_note_and_the_python_engine(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(cbuild, "COMPILERS", ("mmrace-no-such-cc",))
    target = KernelTarget(engine="native")
    await target.open(2, Space(B, SIZE, P))
    try:
        assert target.engine == "python" and target.describe["engine"] == "python"
        assert target.note is not None and "no C compiler found" in target.note
        grab = [[mm.Op.mmap(B, P, mm.PROT_READ, mm.NR)] for _ in range(2)]
        outcome = await target.run_race(0, grab)
        assert sorted(r.result or 0 for r in outcome.records) == [-mm.EEXIST, B]
        await target.run_serial(0, [mm.Op.munmap(B, P)])
    finally:
        await target.aclose()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mmrace: --engine native: no C compiler found")


def test_a_failed_build_is_one_line(fresh_cache: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) { return nope; }\n")
    with pytest.raises(_native.NativeUnavailable) as caught:
        _native.build("bare", bad)
    assert "\n" not in str(caught.value) and "bad.c" in str(caught.value)


async def test_native_rounds_record_every_task_and_rotate_the_winner() -> None:
    tasks, rounds = 4, 200
    target = KernelTarget(engine="native")
    await target.open(tasks, Space(B, SIZE, P))
    assert target.describe["engine"] == "native"
    grab = [[mm.Op.mmap(B, P, mm.PROT_READ | mm.PROT_WRITE, mm.NR)] for _ in range(tasks)]
    winners: set[int] = set()
    try:
        for r in range(rounds):
            outcome = await target.run_race(r, grab)
            assert outcome.problems == []
            assert [rec.task for rec in outcome.records] == list(range(tasks))
            assert all(rec.round == r and rec.call <= rec.ret for rec in outcome.records)  # type: ignore[operator]
            won = [rec.task for rec in outcome.records if rec.result == B]
            assert len(won) == 1
            assert sorted(rec.result or 0 for rec in outcome.records) == [-mm.EEXIST] * 3 + [B]
            winners.update(won)
            cleanup = await target.run_serial(r, [mm.Op.munmap(B, P)])
            assert [c.result for c in cleanup] == [0]
    finally:
        await target.aclose()
    assert len(winners) >= 2  # the release order rotates: no task wins every round


async def test_a_hung_call_times_out_as_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_native.DEBUG_ENV, "hang:1")  # when a worker thread runs task 1
    target = KernelTarget(TargetOptions(spec="kernel", timeout=0.5), engine="native")
    await target.open(2, Space(B, SIZE, P))
    grab = [[mm.Op.mmap(B, P, mm.PROT_READ, mm.NR)] for _ in range(2)]
    try:
        for r in range(2):  # the plans rotate over the threads: one of two rounds hangs
            outcome = await target.run_race(r, grab)
            if target.dead is not None:
                break
            assert outcome.problems == []
            await target.run_serial(r, [mm.Op.munmap(B, P)])
        hung = [rec for rec in outcome.records if rec.task == 1]
        assert len(hung) == 1 and hung[0].result is None and hung[0].ret is None
        assert [rec.result for rec in outcome.records if rec.task == 0] == [B]
        assert target.dead is not None and "did not return within 0.5 s" in target.dead
        assert outcome.problems == [target.dead] and not outcome.overlapped
        assert await target.run_serial(r, [mm.Op.munmap(B, P)]) == []  # nothing issued
        assert (await target.run_race(r + 1, grab)).records == []
    finally:
        await target.aclose()  # unmaps the arena (task 0's page) even so


def test_no_compiler_for_the_native_agent_is_a_one_line_usage_error(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stress.errors import UsageError
    from stress.harness._agent import AgentTarget

    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(cbuild, "COMPILERS", ("mmrace-no-such-cc",))
    monkeypatch.setattr(cbuild, "STATIC_COMPILERS", ())
    with pytest.raises(UsageError) as caught:
        AgentTarget(TargetOptions(spec="agent", agent="native"))
    assert str(caught.value) == ("--agent native: no C compiler found (tried mmrace-no-such-cc)")
