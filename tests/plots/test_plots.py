"""The plot functions on small hand-built data: artists, labels, legends, reproducible files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import attrs
import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from plots import mutants, race, save, scaling, timeline
from plots.data import (
    Latencies,
    LockWaits,
    MutantResult,
    OutcomeRow,
    RunData,
    SweepData,
    SweepPoint,
    Timeline,
    TimelineCall,
    jain_index,
    scheduler_note,
)
from plots.style import CONFLICT_COLOR, GRADE_COLORS, LINEARIZED_COLOR
from stress.errors import UsageError


def values(data: object) -> list[float]:
    """A line's x or y data as plain floats (matplotlib types it as any array-like)."""
    return [float(v) for v in np.asarray(data, dtype=float)]


def bars_of(ax: Axes) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


@pytest.fixture
def ax() -> Iterator[Axes]:
    with save.style():
        fig = save.new_figure()
        yield fig.add_subplot()


def legend_texts(ax: Axes) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


CALLS = (
    TimelineCall(0, "mmap A → A", 1_000, 9_000, order=1),
    TimelineCall(1, "mmap A → A", 2_000, 8_000, conflict=True, reason="A already mapped"),
    TimelineCall(2, "mmap A → EEXIST", 3_000, None, order=2),
    TimelineCall(2, "munmap A → 0", 500, 900),
)

RUN = RunData(
    title="same-range on model, 3 tasks, 10 rounds",
    target="model",
    scheduler="trio",
    tasks=3,
    rounds=10,
    wins=(5, 0, 5),
    latencies=Latencies(won=(1_000, 2_000, 3_000), eexist=(4_000, 5_000), other=()),
    lock_waits=LockWaits((0, 1_000, 2_000, 3_000), measured=False),
    outcomes=(
        OutcomeRow("1 winner", 9, "ACCEPTABLE"),
        OutcomeRow("2 winners", 1, "FORBIDDEN"),
    ),
    timeline=Timeline("Counterexample", CALLS),
)

POINTS = tuple(
    SweepPoint(t, 10, 10 * t, 0.001 * t, 1.0 if t > 1 else 0.0, 10 * t, 10 * (t - 1))
    for t in (1, 2, 4, 8)
)


def test_jain_index() -> None:
    assert jain_index([3, 3, 3]) == pytest.approx(1.0)
    assert jain_index([6, 0, 0]) == pytest.approx(1 / 3)
    assert jain_index([4, 0, 4, 0]) == pytest.approx(0.5)
    assert jain_index([0, 0]) is None
    assert jain_index([]) is None


def test_scheduler_note_only_for_lopsided_schedulers() -> None:
    assert "bimodal" in (scheduler_note("model", "trio") or "")
    assert scheduler_note("model", "random") is None
    assert scheduler_note("agent", None) is None
    assert "start order" in (scheduler_note("kernel", None) or "")  # the python engine's
    assert scheduler_note("kernel", None, engine="native") is None


def test_wins_per_task(ax: Axes) -> None:
    race.wins_per_task(ax, (5, 0, 5), note="lopsided scheduler")
    assert "Jain's fairness index 0.667" in ax.get_title()
    assert ax.get_xlabel() == "task"
    assert "wins" in ax.get_ylabel()
    assert [p.get_height() for p in bars_of(ax) if p.get_height() > 0] == [5, 5]
    assert legend_texts(ax) == ["fair share", "wins"]
    assert "lopsided scheduler" in [t.get_text() for t in ax.texts]


def test_wins_without_wins_says_so(ax: Axes) -> None:
    race.wins_per_task(ax, (0, 0))
    assert "n/a" in ax.get_title()
    assert not ax.texts  # no note without a lopsided scheduler


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert race.percentile(values, 50) == 50.0
    assert race.percentile(values, 99) == 99.0
    assert race.percentile([7.0], 99) == 7.0


def test_latency_cdf(ax: Axes) -> None:
    race.latency_cdf(ax, RUN.latencies)
    assert ax.get_xlabel() == "latency (µs)"
    assert ax.get_ylabel() == "share of calls"
    texts = legend_texts(ax)
    assert texts[0] == "won (n=3, p50 2.0 µs, p99 3.0 µs)"
    assert texts[1] == "EEXIST (n=2, p50 4.0 µs, p99 5.0 µs)"
    assert texts[2:] == ["p50", "p99"]  # "other" has no sample, so no curve
    won_curve = ax.get_lines()[0]
    assert values(won_curve.get_xdata()) == [1.0, 2.0, 3.0]
    assert values(won_curve.get_ydata()) == pytest.approx([1 / 3, 2 / 3, 1.0])


def test_latency_cdf_in_steps_and_log_scale(ax: Axes) -> None:
    race.latency_cdf(ax, Latencies(won=(1, 10, 1000, 5000), clock="steps"))
    assert ax.get_xlabel() == "latency (steps)"
    assert ax.get_xscale() == "log"


def test_lock_waits(ax: Axes) -> None:
    race.lock_waits(ax, LockWaits((0, 1_000, 2_000, 3_000), measured=False))
    assert "estimated" in ax.get_title()
    assert ax.get_xlabel() == "wait (µs)"
    assert ax.get_ylabel() == "calls"
    assert legend_texts(ax) == ["calls", "mean 1.5 µs"]
    assert sum(p.get_height() for p in bars_of(ax)) == 4


def test_outcome_histogram_colours_by_grade(ax: Axes) -> None:
    race.outcome_histogram(ax, RUN.outcomes)
    bars = bars_of(ax)
    assert [b.get_width() for b in bars] == [9, 1]
    assert [to_hex(b.get_facecolor()) for b in bars] == [
        GRADE_COLORS["ACCEPTABLE"],
        GRADE_COLORS["FORBIDDEN"],
    ]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["1 winner", "2 winners"]
    assert legend_texts(ax) == ["ACCEPTABLE", "FORBIDDEN"]
    assert ax.get_xlabel() == "rounds"


def test_timeline_marks_order_conflicts_and_pending(ax: Axes) -> None:
    timeline.timeline(ax, Timeline("Counterexample", CALLS))
    assert ax.get_title() == "Counterexample"
    assert ax.get_xlabel() == "time since first call (µs)"
    bars = ax.collections
    assert len(bars) == len(CALLS)
    colors = [to_hex(cast(Any, b.get_facecolor())[0]) for b in bars]
    assert colors[0] == LINEARIZED_COLOR
    assert colors[1] == CONFLICT_COLOR
    labels = [t.get_text() for t in ax.texts]
    assert "1. mmap A → A" in labels and "2. mmap A → EEXIST" in labels
    assert "munmap A → 0" in labels  # not linearized: no number
    assert [t.get_text() for t in ax.get_yticklabels()] == ["task 0", "task 1", "task 2"]
    assert legend_texts(ax)[-1] == "pending"
    # the pending call runs past the last response (at 8 µs after the first call)
    pending = values(np.asarray(bars[2].get_paths()[0].vertices)[:, 0])
    assert min(pending) == pytest.approx(2.5)
    assert max(pending) > 8.5


def test_throughput_overlap(ax: Axes) -> None:
    left, right = scaling.throughput_overlap(ax, POINTS)
    assert left.get_xlabel() == "tasks"
    assert "calls/s" in left.get_ylabel()
    assert "overlap" in right.get_ylabel()
    assert legend_texts(left) == ["throughput", "overlap ratio"]
    assert values(left.get_lines()[0].get_ydata()) == pytest.approx([10_000.0] * 4)
    assert values(right.get_lines()[0].get_ydata()) == [0.0, 1.0, 1.0, 1.0]
    assert left.get_xscale() == "log"


def test_contention(ax: Axes) -> None:
    scaling.contention(ax, POINTS)
    reference, measured = ax.get_lines()[:2]
    assert values(measured.get_ydata()) == pytest.approx([0.0, 0.5, 0.75, 0.875])
    assert values(reference.get_ydata()) == pytest.approx([0.0, 0.5, 0.75, 0.875])
    assert "EEXIST" in ax.get_ylabel()
    assert len(legend_texts(ax)) == 2


def test_mutant_detection(ax: Axes) -> None:
    results = (
        MutantResult("torn-check", "random", 100, 7),
        MutantResult("no-lock", "random", 100, None),
        MutantResult("torn-check", "pct", 100, 2),
        MutantResult("no-lock", "pct", 100, 40),
    )
    mutants.detection(ax, results)
    assert legend_texts(ax) == ["random (1/2 found)", "pct (2/2 found)"]
    assert "of 2" in ax.get_title()
    pct = ax.get_lines()[1]
    assert values(pct.get_xdata()) == [1, 2, 40, 100]
    assert values(pct.get_ydata()) == [0, 1, 2, 2]


def test_run_layouts_skip_absent_data() -> None:
    bare = RunData("t", "kernel", 1, 1, (1,), Latencies(), None, (), None)
    assert list(save.run_layouts(bare)) == ["wins", "latency"]
    assert list(save.run_layouts(RUN)) == ["outcomes", "wins", "latency", "lock-wait", "timeline"]


def test_saved_files_are_reproducible_byte_for_byte(tmp_path: Path) -> None:
    first = save.write_run(RUN, tmp_path / "a")
    second = save.write_run(RUN, tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert a.read_bytes() == b.read_bytes(), a.name
    assert b"Software" not in first[0].read_bytes()
    svg1 = save.render(save.sweep_layouts(SweepData("w", "model", 1, POINTS)), "svg")
    svg2 = save.render(save.sweep_layouts(SweepData("w", "model", 1, POINTS)), "svg")
    assert svg1 == svg2
    assert b"<dc:date>" not in svg1["throughput"]


def test_different_data_gives_different_png() -> None:
    first = save.render({"wins": save.run_layouts(RUN)["wins"]})
    changed = attrs.evolve(RUN, wins=(5, 1, 4))
    second = save.render({"wins": save.run_layouts(changed)["wins"]})
    assert first["wins"] != second["wins"]


def test_figures_need_no_pyplot() -> None:
    with save.style():
        fig = save.new_figure()
    assert isinstance(fig, Figure)
    assert type(fig.canvas).__name__ == "FigureCanvasAgg"


def test_mutants_file_round_trip_and_plot_command(tmp_path: Path) -> None:
    from stress.cli import main
    from stress.report._files import MUTANTS_FILE, load_mutants, mutants_to_json

    results = (
        MutantResult("torn-check", "random", 100, 7),
        MutantResult("torn-check", "pct", 100, None),
    )
    path = tmp_path / MUTANTS_FILE
    path.write_text(json.dumps(mutants_to_json(results)), encoding="utf-8")
    assert load_mutants(path) == results
    assert main(["plot", str(tmp_path)]) == 0
    assert (tmp_path / "plots" / "detection.png").read_bytes()[:4] == b"\x89PNG"
    path.write_text('{"mmrace_mutants": 1, "results": [{"variant": 3}]}', encoding="utf-8")
    with pytest.raises(UsageError, match=r"results\[0\]: 'variant' has the wrong type"):
        load_mutants(path)
