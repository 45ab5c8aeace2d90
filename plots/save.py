"""Lay out figures and write them: the only module of `plots` that produces files or bytes.

Output is reproducible byte for byte for the same data: matplotlib's default style (a user's
matplotlibrc cannot leak in), the bundled DejaVu Sans font, no timestamps or software version
in the metadata, a fixed SVG hash salt. Figures are built on `matplotlib.figure.Figure` with
the Agg canvas, never pyplot, so nothing needs a display and no global figure state is kept.
matplotlib is imported only when a figure is built (`style`, `new_figure`): building the
layouts (which figures a run gets) is cheap, and so is importing this module.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plots import mutants, race, scaling, timeline
from plots.data import MutantResult, RunData, SweepData, scheduler_note

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RC: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "svg.hashsalt": "mmrace",
    "svg.fonttype": "path",
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "axes.grid": False,
    "figure.autolayout": False,
}

PNG_METADATA: dict[str, str | None] = {"Software": None}
SVG_METADATA: dict[str, str | None] = {"Date": None, "Creator": None}

Builder = Callable[["Figure"], None]


@contextmanager
def style() -> Iterator[None]:
    """The fixed style every figure is built and saved under."""
    import matplotlib
    import matplotlib.style

    # matplotlib types rc keys as a Literal union; RC's keys are checked at runtime instead.
    with matplotlib.style.context("default"), matplotlib.rc_context(RC):  # type: ignore[arg-type]
        yield


def new_figure(width: float = 8.0, height: float = 4.5) -> Figure:
    """A figure on the Agg canvas (call inside `style()`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_bytes(fig: Figure, fmt: str = "png") -> bytes:
    """The figure encoded as ``fmt`` ("png" or "svg"), reproducibly."""
    buf = io.BytesIO()
    metadata = SVG_METADATA if fmt == "svg" else PNG_METADATA
    fig.savefig(buf, format=fmt, metadata=metadata)
    return buf.getvalue()


# --- figure layouts: name -> (size, builder) -------------------------------------------------


def run_layouts(run: RunData) -> dict[str, tuple[tuple[float, float], Builder]]:
    """The per-run figures, by file stem, in report order; absent data gives no figure."""
    layouts: dict[str, tuple[tuple[float, float], Builder]] = {}
    if run.outcomes:
        height = max(2.5, 1.2 + 0.5 * len(run.outcomes))
        layouts["outcomes"] = (
            (9.0, height),
            lambda fig: _one(fig, lambda ax: race.outcome_histogram(ax, run.outcomes)),
        )
    note = scheduler_note(run.target, run.scheduler, run.engine)
    layouts["wins"] = (
        (9.0, 4.5),
        lambda fig: _one(fig, lambda ax: race.wins_per_task(ax, run.wins, note)),
    )
    if run.winner_rank:
        layouts["winner-rank"] = (
            (8.0, 4.0),
            lambda fig: _one(fig, lambda ax: race.winner_rank(ax, run.winner_rank, run.tasks)),
        )
    if run.in_flight:
        layouts["in-flight"] = (
            (8.0, 4.0),
            lambda fig: _one(fig, lambda ax: race.in_flight(ax, run.in_flight, run.tasks)),
        )
    layouts["latency"] = (
        (9.0, 5.0),
        lambda fig: _one(fig, lambda ax: race.latency_cdf(ax, run.latencies)),
    )
    if run.latency_time is not None:
        over = run.latency_time
        layouts["latency-time"] = (
            (9.0, 4.0),
            lambda fig: _one(fig, lambda ax: race.latency_over_time(ax, over)),
        )
    if run.lock_waits is not None:
        waits = run.lock_waits
        layouts["lock-wait"] = (
            (8.0, 4.0),
            lambda fig: _one(fig, lambda ax: race.lock_waits(ax, waits)),
        )
    if run.timeline is not None:
        tl = run.timeline
        tasks = len(timeline.shown_tasks(tl))
        layouts["timeline"] = (
            (11.0, max(2.5, 2.0 + 0.6 * tasks)),
            lambda fig: _one(fig, lambda ax: timeline.timeline(ax, tl)),
        )
    return layouts


def sweep_layouts(sweep: SweepData) -> dict[str, tuple[tuple[float, float], Builder]]:
    """The scaling figures of a sweep."""
    pts = sweep.points
    return {
        "throughput": (
            (8.0, 4.5),
            lambda fig: _one(fig, lambda ax: scaling.throughput_overlap(ax, pts)),
        ),
        "contention": ((8.0, 4.5), lambda fig: _one(fig, lambda ax: scaling.contention(ax, pts))),
        **(
            {
                "latency-percentiles": (
                    (9.0, 4.5),
                    lambda fig: _one(fig, lambda ax: scaling.latency_percentiles(ax, pts)),
                )
            }
            if any(p.latency_percentiles for p in pts)
            else {}
        ),
    }


def mutant_layouts(
    results: tuple[MutantResult, ...],
) -> dict[str, tuple[tuple[float, float], Builder]]:
    """The detection figure of `mmrace mutants`."""
    return {
        "detection": ((8.0, 4.5), lambda fig: _one(fig, lambda ax: mutants.detection(ax, results)))
    }


def _one(fig: Figure, draw: Callable[[Any], Any]) -> None:
    draw(fig.add_subplot())  # laid out when saved: the figure's layout is "constrained"


# --- rendering -------------------------------------------------------------------------------


def render(
    layouts: dict[str, tuple[tuple[float, float], Builder]], fmt: str = "png"
) -> dict[str, bytes]:
    """Build each figure and encode it: file stem -> bytes."""
    out: dict[str, bytes] = {}
    with style():
        for name, ((width, height), build) in layouts.items():
            fig = new_figure(width, height)
            build(fig)
            out[name] = figure_bytes(fig, fmt)
    return out


def write(
    layouts: dict[str, tuple[tuple[float, float], Builder]], out_dir: Path, fmt: str = "png"
) -> list[Path]:
    """Render ``layouts`` into ``out_dir`` (created) as ``<stem>.<fmt>``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in render(layouts, fmt).items():
        path = out_dir / f"{name}.{fmt}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def write_run(run: RunData, out_dir: Path, fmt: str = "png") -> list[Path]:
    """Write a run's plots into ``out_dir``."""
    return write(run_layouts(run), out_dir, fmt)


def write_sweep(sweep: SweepData, out_dir: Path, fmt: str = "png") -> list[Path]:
    """Write a sweep's scaling plots into ``out_dir``."""
    return write(sweep_layouts(sweep), out_dir, fmt)


def write_mutants(results: tuple[MutantResult, ...], out_dir: Path, fmt: str = "png") -> list[Path]:
    """Write the mutant detection plot into ``out_dir``."""
    return write(mutant_layouts(results), out_dir, fmt)
