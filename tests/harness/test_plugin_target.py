"""Plug-in targets: a user's own implementation, sync (threads) or async (trio tasks)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import mm
from stress.cli import main
from stress.errors import UsageError
from stress.harness._plugin import PluginTarget
from stress.harness._target import TargetOptions
from tests.conftest import RunResult

B = 0x100000000000
P = 4096


def run(mmrace_run: Callable[..., RunResult], factory: str) -> RunResult:
    argv = ["same-page", "--target", f"toyspace:{factory}", "--tasks", "8"]
    return mmrace_run(*argv, "--rounds", "60", "--seed", "7", name=factory)


@pytest.mark.parametrize("factory", ["correct", "correct_async"])
def test_correct_plugin_is_ok(
    mmrace_run: Callable[..., RunResult], capsys: pytest.CaptureFixture[str], factory: str
) -> None:
    code, summary = run(mmrace_run, factory)
    assert code == 0, capsys.readouterr().out
    assert summary["verdict"] == "OK"
    assert summary["target"] == f"plugin:toyspace:{factory}"
    assert summary["operations"] == 60 * 11  # 8 probes, the cleanup, the footprint check


@pytest.mark.parametrize("factory", ["racy", "racy_async"])
def test_racy_plugin_is_caught(
    mmrace_run: Callable[..., RunResult], capsys: pytest.CaptureFixture[str], factory: str
) -> None:
    code, summary = run(mmrace_run, factory)
    assert code == 1, capsys.readouterr().out
    assert summary["verdict"] == "VIOLATION"
    assert summary["double_wins"] > 0  # two tasks both got the page in some round


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:f", "module 'no_such_module_xyz' not found"),
        ("toyspace:nope", "module 'toyspace' has no attribute 'nope'"),
        ("toyspace:not_callable", "'not_callable' is not callable"),
        ("toyspace:lacks_mprotect", "the factory's _NoMprotect object lacks method(s) mprotect"),
        ("toyspace:mixed", "mix of async and sync methods (mmap, munmap sync)"),
        ("toyspace:needs_two", "the factory must take one argument (mm.Params) or none"),
        ("toyspace:explodes", "the factory raised RuntimeError: no licence"),
    ],
)
def test_bad_plugin_is_a_one_line_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spec: str, message: str
) -> None:
    out = tmp_path / "run"
    assert main(["run", "--target", spec, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mmrace run: error: --target {spec}: {message}"]


async def test_plugin_target_records_and_factory_arguments() -> None:
    """Directly: the factory gets the params (or nothing); records carry results in order."""
    from workloads import Space

    params = mm.Params.reference()
    for factory, flavour in [("correct", "sync"), ("racy_async", "async")]:
        target = PluginTarget(TargetOptions(spec=f"toyspace:{factory}", params=params))
        assert target.describe["flavour"].startswith(flavour)
        await target.open(2, Space(B, 1 << 24, P))
        try:
            setup = await target.run_serial(0, [mm.Op.mmap(B, 2 * P, mm.PROT_READ, mm.NR)])
            assert [(c.task, c.result) for c in setup] == [(0, B)]
            plans = [
                [mm.Op.mprotect(B, 2 * P, mm.PROT_NONE), mm.Op.munmap(B, P)],
                [mm.Op.mmap(B + 1, P, mm.PROT_READ, mm.NR)],
            ]
            outcome = await target.run_race(0, plans)
            got = {(c.task, c.op.kind): c.result for c in outcome.records}
            assert got == {(0, "mprotect"): 0, (0, "munmap"): 0, (1, "mmap"): -mm.EINVAL}
            assert outcome.problems == []
        finally:
            await target.aclose()


def test_non_int_result_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "badresult.py").write_text(
        "class T:\n"
        "    def mmap(self, a, n, p, f):\n        return 'ok'\n"
        "    def munmap(self, a, n):\n        return 0\n"
        "    def mprotect(self, a, n, p):\n        return 0\n"
        "def make():\n    return T()\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(UsageError, match=r"mmap returned 'ok', not an int"):
            import trio

            from workloads import Space

            async def go() -> None:
                target = PluginTarget(TargetOptions(spec="badresult:make"))
                await target.open(1, Space(B, 1 << 24, P))
                try:
                    await target.run_serial(0, [mm.Op.mmap(B, P, mm.PROT_READ, mm.NR)])
                finally:
                    await target.aclose()

            trio.run(go)
    finally:
        sys.path.remove(str(tmp_path))
