"""`mmrace mutants`: bug variants are killed where they should be, correct cores are not flagged,
detection is reproducible under the controlled scheduler, and the results file is the one the
plots read."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

import mm.variants
import workloads
from stress.cli import mutants as cmd_mutants
from stress.errors import UsageError
from stress.report import load_mutants
from stress.selftest import _workloads as extra
from stress.selftest.mutants import EXPOSES, CellSpec, MutantsReport, plan_cells, run_all, run_cell


def test_every_variant_has_exposing_workloads_that_exist() -> None:
    assert set(EXPOSES) == set(mm.variants.names())
    known = set(workloads.catalog()) | set(extra.TEXTS)
    for name, used in EXPOSES.items():
        assert used and set(used) <= known, name


@pytest.mark.parametrize("name", sorted(extra.TEXTS))
def test_extra_workloads_are_valid_toml(name: str, tmp_path: Path) -> None:
    from workloads._model import check_workload

    workload, ref = extra.load(name, tmp_path)
    assert workload.name == name and Path(ref).is_file()
    check_workload(workload)


@pytest.mark.parametrize(
    "variant", ["check-then-act", "munmap-nonatomic", "mprotect-all-or-nothing", "one-min-addr"]
)
def test_variant_is_killed_on_its_workload(variant: str, tmp_path: Path) -> None:
    spec = CellSpec(variant, EXPOSES[variant][0], "random")
    result = run_cell(spec, seconds=20, max_rounds=300, tasks=4, seed=1, out=tmp_path)
    assert result.error is None
    assert result.detected_at is not None and result.detected_at == result.rounds
    assert result.how
    assert (tmp_path / spec.slug / "history.jsonl").is_file()
    saved = json.loads((tmp_path / spec.slug / "run.json").read_text())
    assert saved["rounds"] == result.detected_at and saved["variant"] == variant


@pytest.mark.parametrize("workload", ["same-page", "split-munmap", "mprotect-hole", "low-overlap"])
@pytest.mark.parametrize("strategy", ["random", "noise"])
def test_correct_core_is_not_flagged(workload: str, strategy: str, tmp_path: Path) -> None:
    result = run_cell(
        CellSpec(None, workload, strategy), seconds=20, max_rounds=40, tasks=4, seed=3, out=tmp_path
    )
    assert result.error is None
    assert result.rounds == 40 and result.detected_at is None and result.unknown_rounds == 0


def test_variant_survives_a_workload_that_cannot_show_it(tmp_path: Path) -> None:
    survivor = run_cell(
        CellSpec("mprotect-all-or-nothing", "same-page", "pct"),
        seconds=20,
        max_rounds=30,
        tasks=4,
        seed=1,
        out=tmp_path,
    )
    assert survivor.detected_at is None and survivor.rounds == 30
    report = MutantsReport(("mprotect-all-or-nothing",), (survivor,), 1.0, 0.1)
    assert report.survivors == ["mprotect-all-or-nothing"] and not report.ok
    assert "NO" in cmd_mutants.table(report) and "VIOLATION" in cmd_mutants.table(report)


def test_controlled_detection_is_reproducible(tmp_path: Path) -> None:
    spec = CellSpec("rollback-window", "same-page", "pct")
    first = run_cell(spec, seconds=20, max_rounds=500, tasks=4, seed=7, out=tmp_path / "a")
    again = run_cell(spec, seconds=20, max_rounds=500, tasks=4, seed=7, out=tmp_path / "b")
    assert first.detected_at is not None
    assert (first.detected_at, first.how) == (again.detected_at, again.how)


def test_plan_cells_covers_strategies_and_false_alarm_targets() -> None:
    killers, checks = plan_cells(["check-then-act"])
    variant_cells = [c for c in killers if c.plugin is None]
    assert {c.strategy for c in variant_cells} == {"random", "pct", "noise"}
    assert {c.workload for c in variant_cells} == set(EXPOSES["check-then-act"])
    plugin_cells = {(c.subject, c.strategy) for c in killers if c.plugin is not None}
    assert plugin_cells == {
        (f"plugin-{p}", s) for p in ("lockfree-sync", "lockfree-async") for s in ("random", "pct")
    }
    assert {c.subject for c in checks} == {
        "correct", "kernel", "plugin-locked-sync", "plugin-locked-async"
    }  # fmt: skip
    kernel_workloads = {c.workload for c in checks if c.strategy == "kernel"}
    assert "mprotect-hole" not in kernel_workloads and "same-page" in kernel_workloads
    _, none = plan_cells(["check-then-act"], false_alarm=False)
    assert none == []
    only, _ = plan_cells(["check-then-act"], plugins=False)
    assert all(c.plugin is None for c in only)


def test_run_all_writes_results_the_plots_read(tmp_path: Path) -> None:
    report = run_all(
        ["check-then-act", "adjacent-overlap"],
        budget=5,
        out=tmp_path,
        max_rounds=200,
        false_alarm=False,
    )
    assert report.ok and report.median_seconds is not None
    assert report.plugins == ("lockfree-sync", "lockfree-async")
    assert report.plugin_median_seconds is not None
    data = report.to_json()
    assert [p["killed"] for p in data["plugins"]] == [True, True]
    path = tmp_path / "mutants.json"
    path.write_text(json.dumps(data))
    loaded = load_mutants(path)
    assert {(r.variant, r.strategy) for r in loaded} == {
        (v, s) for v in ("check-then-act", "adjacent-overlap") for s in ("random", "pct", "noise")
    } | {(p, s) for p in ("lockfree-sync", "lockfree-async") for s in ("random", "pct")}
    assert all(r.detected_at is not None and r.detected_at <= r.rounds for r in loaded)


@pytest.mark.parametrize("plugin", ["lockfree-sync", "lockfree-async"])
def test_lock_free_plugin_is_caught_and_its_locked_version_is_not(
    plugin: str, tmp_path: Path
) -> None:
    caught = run_cell(
        CellSpec(None, "same-page", "pct", plugin=plugin),
        seconds=20,
        max_rounds=300,
        tasks=4,
        seed=2,
        out=tmp_path,
    )
    assert caught.error is None and caught.detected_at is not None
    assert caught.replay == f"mmrace replay {tmp_path / f'plugin-{plugin}' / 'same-page-pct'}"
    locked = plugin.replace("lockfree", "locked")
    clean = run_cell(
        CellSpec(None, "same-page", "random", plugin=locked),
        seconds=20,
        max_rounds=100,
        tasks=4,
        seed=2,
        out=tmp_path,
    )
    assert clean.error is None and clean.rounds == 100
    assert clean.detected_at is None and clean.unknown_rounds == 0


def _args(**overrides: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cmd_mutants.add_arguments(parser)
    args = parser.parse_args([])
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_cli_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--variants: unknown variant"):
        cmd_mutants.run(_args(variants="no-such", out=tmp_path))
    with pytest.raises(UsageError, match="--budget"):
        cmd_mutants.run(_args(budget="soon", out=tmp_path))


def test_cli_exit_code_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cmd_mutants.run(
        _args(variants="zero-einval", budget="3", out=tmp_path, no_false_alarm=True)
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "zero-einval" in text and "OK" in text
    data = json.loads((tmp_path / "mutants.json").read_text())
    assert data["ok"] is True and data["variants"][0]["killed"] is True


def test_a_cell_whose_target_fails_is_an_error_not_a_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stress.selftest.mutants as mutants
    from stress.harness import make_target

    class Failing:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        async def run_race(self, round_index: int, plans: object) -> object:
            if round_index == 2:
                raise RuntimeError("agent crashed")
            return await self.inner.run_race(round_index, plans)  # type: ignore[attr-defined]

    monkeypatch.setattr(mutants, "make_target", lambda options: Failing(make_target(options)))
    result = run_cell(
        CellSpec(None, "same-page", "random"),
        seconds=20,
        max_rounds=10,
        tasks=4,
        seed=1,
        out=tmp_path,
    )
    assert result.detected_at is None and result.rounds == 2
    assert result.error and "agent crashed" in result.error
    report = MutantsReport((), (result,), 1.0, 0.1)
    assert report.errors and not report.ok


def test_cli_lists_every_variant_with_its_origin(capsys: pytest.CaptureFixture[str]) -> None:
    from mm import variants
    from stress.cli import main

    assert main(["mutants", "--list"]) == 0
    out = capsys.readouterr().out
    for name in variants.names():
        assert f"{name}  (" in out
        assert variants.get(name).origin in out
