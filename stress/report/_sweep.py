"""The HTML page of a sweep (DIR/sweep.html): one row per task count, its latency percentiles
over the repeats, the scaling plots inline, links to each run's own report. Self-contained
like the run report (inline CSS and PNGs, no network); built from the `SweepData` alone."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from plots.data import SweepData, SweepPoint
from plots.scaling import PERCENTILES, median
from plots.style import scale_time
from stress.report import _render
from stress.report._html import _CSS, _badge
from stress.rundir import PLOTS_DIR

SWEEP_HTML = "sweep.html"

CAPTIONS = {
    "throughput": "Racing calls per second and the share of rounds whose calls overlapped.",
    "contention": "Share of probes that lost (EEXIST); one winner per round gives (n−1)/n.",
    "latency-percentiles": "Latency percentiles per task count: median over the repeats, "
    "bars from the lowest to the highest repeat.",
}


def _percentile_cells(p: SweepPoint) -> str:
    if not p.latency_percentiles:
        return "<td colspan='3'>no latencies</td>"
    cells = []
    for k in range(len(PERCENTILES)):
        values, unit = scale_time([round(v[k]) for v in p.latency_percentiles], p.clock)
        spread = f" ({min(values):.1f}–{max(values):.1f})" if len(values) > 1 else ""
        cells.append(f"<td class='num'>{median(values):.1f} {unit}{spread}</td>")
    return "".join(cells)


def sweep_html(sweep: SweepData, images: dict[str, bytes], runs: dict[int, list[str]]) -> str:
    """The sweep page: ``runs`` maps a task count to links to its runs (relative paths: a
    run's report.html, or its directory when it has no report)."""
    rows = []
    for p in sweep.points:
        links = " ".join(
            f'<a href="{html.escape(href)}">{html.escape(href.split("/", 1)[0])}</a>'
            for href in runs.get(p.tasks, [])
        )
        rows.append(
            f"<tr><td class='num'>{p.tasks}</td><td class='num'>{p.repeats}</td>"
            f"<td>{_badge(p.verdict)}</td><td class='num'>{p.rounds}</td>"
            f"<td class='num'>{p.throughput:,.0f}</td>"
            f"<td class='num'>{100 * p.overlap_ratio:.0f}%</td>"
            f"<td class='num'>{100 * p.lost_share:.0f}%</td>{_percentile_cells(p)}"
            f"<td>{links}</td></tr>"
        )
    figures = "".join(
        f'<figure id="plot-{html.escape(name)}"><img alt="{html.escape(name)} plot" '
        f'src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'
        f"<figcaption>{html.escape(CAPTIONS.get(name, name))}</figcaption></figure>"
        for name, data in images.items()
    )
    title = f"mmrace sweep: {sweep.workload} on {sweep.target}"
    heads = "".join(f"<th>{name} (median, min–max)</th>" for name in PERCENTILES)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>seed {sweep.seed}, task counts "
        f"{', '.join(str(p.tasks) for p in sweep.points)}</p></header>"
        '<section id="sizes"><h2>Sizes</h2><table class="sizes"><tr><th>tasks</th>'
        "<th>repeats</th><th>verdict</th><th>rounds</th><th>calls/s</th><th>overlap</th>"
        f"<th>probes lost</th>{heads}<th>runs</th></tr>{''.join(rows)}</table></section>"
        f'<section id="plots"><h2>Plots</h2>{figures}</section></body></html>\n'
    )


def write_sweep_report(out: Path, sweep: SweepData, runs: dict[int, list[str]]) -> list[Path]:
    """Draw the sweep's plots into DIR/plots/ and write DIR/sweep.html; returns the paths."""
    images = _render.render("sweep", sweep)
    plot_dir = out / PLOTS_DIR
    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in images.items():
        path = plot_dir / f"{name}.png"
        path.write_bytes(data)
        paths.append(path)
    links = {
        tasks: [
            f"{d}/report.html" if (out / d / "report.html").is_file() else f"{d}/" for d in dirs
        ]
        for tasks, dirs in runs.items()
    }
    page = out / SWEEP_HTML
    page.write_text(sweep_html(sweep, images, links), encoding="utf-8")
    return [*paths, page]
