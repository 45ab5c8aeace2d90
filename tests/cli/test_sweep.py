"""`mmrace sweep` on the model: one run per size, sweep.json, the scaling plots; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stress.cli import main
from stress.cli.sweep import parse_tasks
from stress.errors import UsageError
from stress.report._files import load_sweep


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "s"
    code = main(
        ["sweep", "same-page", "--tasks", "1,2,4", "--rounds", "6", "--seed", "3",
         "--out", str(out), "--no-reports"]
    )  # fmt: skip
    assert code == 0
    return out


def test_sweep_runs_every_size_and_saves_points(sweep_dir: Path) -> None:
    sweep = load_sweep(sweep_dir / "sweep.json")
    assert (sweep.workload, sweep.target, sweep.seed) == ("same-page", "model", 3)
    assert [p.tasks for p in sweep.points] == [1, 2, 4]
    for p in sweep.points:
        assert p.rounds == 6 and p.verdict == "OK"
        # same-page: every task probes once per round and exactly one wins on a correct model
        assert p.probes == p.operations == 6 * p.tasks
        assert p.lost == 6 * (p.tasks - 1)
        assert p.seconds > 0
    assert sweep.points[0].overlap_ratio == 0.0  # one task cannot overlap with anyone
    assert sweep.points[2].overlap_ratio > 0
    raw = json.loads((sweep_dir / "sweep.json").read_text())
    assert [p["run_dir"] for p in raw["points"]] == ["tasks-1", "tasks-2", "tasks-4"]
    for name in ("tasks-1", "tasks-2", "tasks-4"):
        assert (sweep_dir / name / "summary.json").is_file()


def test_sweep_draws_scaling_plots_and_plot_redraws_them(sweep_dir: Path) -> None:
    plots = sweep_dir / "plots"
    first = {p.name: p.read_bytes() for p in plots.iterdir()}
    assert sorted(first) == ["contention.png", "latency-percentiles.png", "throughput.png"]
    assert main(["plot", str(sweep_dir)]) == 0
    assert {p.name: p.read_bytes() for p in plots.iterdir()} == first


def test_sweep_progress_line_per_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s"
    argv = ["sweep", "same-page", "--tasks", "2,1", "--rounds", "2", "--seed", "1"]
    assert main([*argv, "--out", str(out), "--no-reports"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip().startswith("tasks")]
    assert len(lines) == 2 and "tasks    2:" in lines[0] and "calls/s" in lines[0]
    # a second sweep into the same directory is refused
    assert main([*argv, "--out", str(out)]) == 2
    assert "already holds a sweep" in capsys.readouterr().err


def test_parse_tasks() -> None:
    assert parse_tasks("1,2, 4") == [1, 2, 4]
    for bad in ("", "0", "1,x", "2,2", "-1"):
        with pytest.raises(UsageError, match="--tasks"):
            parse_tasks(bad)


@pytest.mark.parametrize(
    ("flag", "value"), [("--tasks", "1,zero"), ("--rounds", "0"), ("--scheduler", "fifo")]
)
def test_bad_flags_exit_2(
    flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sweep", "same-page", "--tasks", "1", "--out", str(tmp_path / "x"), flag, value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert flag in err and len(err.strip().splitlines()) == 1


def test_malformed_sweep_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "sweep.json"
    path.write_text('{"mmrace_sweep": 1, "workload": "w", "target": "t", "seed": 1, '
                    '"points": [{"tasks": "many"}]}')  # fmt: skip
    with pytest.raises(UsageError, match=r"points\[0\]: 'tasks' has the wrong type"):
        load_sweep(path)


def test_sweep_repeats_and_its_html_page(tmp_path: Path) -> None:
    from html.parser import HTMLParser

    out = tmp_path / "r"
    argv = ["sweep", "same-page", "--tasks", "1,3", "--rounds", "4", "--seed", "5"]
    assert main([*argv, "--repeats", "2", "--out", str(out), "--no-reports"]) == 0
    sweep = load_sweep(out / "sweep.json")
    for p in sweep.points:
        assert p.repeats == 2 and p.rounds == 8  # the repeats added up
        assert len(p.latency_percentiles) == 2  # one (p50, p90, p99) per repeat
        assert all(a <= b <= c for a, b, c in p.latency_percentiles)
    raw = json.loads((out / "sweep.json").read_text())
    assert raw["points"][1]["run_dirs"] == ["tasks-3-r1", "tasks-3-r2"]
    page = (out / "sweep.html").read_text(encoding="utf-8")

    class Rows(HTMLParser):
        rows = 0
        images = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.rows += tag == "tr"
            self.images += tag == "img" and (dict(attrs).get("src") or "").startswith("data:")

    parser = Rows()
    parser.feed(page)
    assert parser.rows == 3 and parser.images == 3  # a header and a row per size; 3 plots
    assert 'href="tasks-3-r2/"' in page and "p99 (median, min–max)" in page
    assert "http" not in page
