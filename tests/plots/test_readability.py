"""Readability of the plots: integer-aligned histogram bins, wrapped and capped outcome rows,
capped timeline rows with the common operation said once, legends outside the data, distinct
grade colours, the new race plots, and that importing the plot modules loads no matplotlib."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator

import pytest
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

from plots import mutants, race, save, scaling, timeline
from plots.data import (
    LatencyOverTime,
    MutantResult,
    OutcomeRow,
    SweepPoint,
    Timeline,
    TimelineCall,
)
from plots.style import GRADE_COLORS


@pytest.fixture
def ax() -> Iterator[Axes]:
    with save.style():
        fig = save.new_figure()
        yield fig.add_subplot()


def test_integer_data_gets_integer_aligned_bins() -> None:
    edges = race.hist_bins([0.0, 1.0, 1.0, 2.0, 7.0])
    assert isinstance(edges, list)
    assert edges[0] == -0.5 and all(b - a == 1 for a, b in itertools.pairwise(edges))
    wide = race.hist_bins([float(v) for v in range(0, 1000, 3)], most=40)
    assert isinstance(wide, list) and len(wide) <= 42
    step = wide[1] - wide[0]
    assert step == int(step)  # a whole number of integer values per bin: no comb
    assert isinstance(race.hist_bins([0.5, 1.25, 2.0]), int)  # fractional data: a count


def test_lock_wait_histogram_of_integers_has_no_empty_comb(ax: Axes) -> None:
    from plots.data import LockWaits

    race.lock_waits(ax, LockWaits(tuple([0, 1, 1, 2, 2, 2, 3] * 5), measured=False, clock="steps"))
    heights = [p.get_height() for p in ax.patches if isinstance(p, Rectangle)]
    assert heights == [5, 10, 15, 5]  # one bar per integer value, none empty


def test_outcome_rows_are_capped_and_keep_the_worst_grade() -> None:
    good = [OutcomeRow(f"k{i}", 1, "ACCEPTABLE") for i in range(30)]
    rows = (*good, OutcomeRow("bad", 1, "FORBIDDEN"))
    capped = race.capped_rows(rows)
    assert len(capped) == race.MAX_OUTCOME_ROWS
    assert capped[-1].grade == "FORBIDDEN" and capped[-1].count == 31 - race.MAX_OUTCOME_ROWS + 1


def test_outcome_labels_are_wrapped_not_cut(ax: Axes) -> None:
    long = "flag ignored: hint fallback, and then some more words to wrap"
    race.outcome_histogram(ax, (OutcomeRow("winners=1 moved=4095", 3, "FORBIDDEN", long),))
    label = ax.get_yticklabels()[0].get_text()
    assert "…" not in label and label.replace("\n", " ").endswith("words to wrap")


def _many_tasks(n: int) -> Timeline:
    calls = tuple(
        TimelineCall(t, "mmap 0x1000+0x1000 → " + ("0x1000" if t == 5 else "EEXIST"), t, t + 9)
        for t in range(n)
    )
    return Timeline("Round 0", calls, "steps")


def test_timeline_draws_at_most_max_rows_and_says_how_many_are_hidden(ax: Axes) -> None:
    timeline.timeline(ax, _many_tasks(300))
    assert len(ax.get_yticks()) == timeline.MAX_ROWS
    title = ax.get_title()
    assert f"{300 - timeline.MAX_ROWS} more not drawn" in title
    assert "every call: mmap 0x1000+0x1000" in title  # said once, not on every bar
    texts = [t.get_text() for t in ax.texts]
    assert all("mmap" not in t for t in texts) and "EEXIST" in texts


def test_timeline_keeps_stuck_tasks() -> None:
    calls = [TimelineCall(t, "op → r", t, t + 1) for t in range(100)]
    calls.append(TimelineCall(99, "op → r", 500, 501, conflict=True, reason="x"))
    assert 99 in timeline.shown_tasks(Timeline("t", tuple(calls)))


def _outside(ax: Axes) -> bool:
    """Is the legend outside the axes' data area?"""
    fig = ax.figure
    fig.canvas.draw()
    legend = ax.get_legend()
    assert legend is not None
    box, area = legend.get_window_extent(), ax.get_window_extent()
    return not box.overlaps(area)


def test_sweep_and_mutant_legends_sit_outside_the_data() -> None:
    points = tuple(
        SweepPoint(t, 10, 10 * t, 0.1, 0.9, 10 * t, 10 * (t - 1), latency_percentiles=((1, 2, 3),))
        for t in (1, 2, 4, 8)
    )
    results = (MutantResult("v", "random", 100, 5), MutantResult("v", "pct", 100, None))
    draws = [
        lambda ax: scaling.throughput_overlap(ax, points),
        lambda ax: scaling.contention(ax, points),
        lambda ax: scaling.latency_percentiles(ax, points),
        lambda ax: mutants.detection(ax, results),
    ]
    for draw in draws:
        with save.style():
            fig = save.new_figure()
            ax = fig.add_subplot()
            draw(ax)
            assert _outside(ax)


def test_grades_have_distinct_colours() -> None:
    from stress.report._html import _CSS

    assert len(set(GRADE_COLORS.values())) == len(GRADE_COLORS)
    css = {
        name: _CSS.split(f".{name} {{ background: ", 1)[1].split(";", 1)[0]
        for name in ("UNKNOWN", "INTERESTING", "UNSPECIFIED")
    }
    assert len(set(css.values())) == 3


def test_new_race_plots(ax: Axes) -> None:
    race.in_flight(ax, ((1, 3), (4, 7)), 4)
    assert [p.get_height() for p in ax.patches if isinstance(p, Rectangle)] == [3, 7]


def test_winner_rank_says_how_often_the_first_caller_won(ax: Axes) -> None:
    race.winner_rank(ax, ((0, 3), (2, 1)), 4)
    assert "75% won by the first" in ax.get_title()


def test_latency_over_time(ax: Axes) -> None:
    race.latency_over_time(ax, LatencyOverTime(4, ((0, 5, 10.0, 20), (4, 5, 12.0, 30)), "steps"))
    assert "per 4 rounds" in ax.get_title() and ax.get_ylabel() == "latency (steps)"


def test_importing_the_plot_modules_loads_no_matplotlib() -> None:
    code = "import sys, plots.save, stress.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
