"""The HTML report of a run: one self-contained file (inline CSS and PNGs, no network access).

`write_report(run_dir)` is what `mmrace run` and `mmrace report` call: it reads the run
directory, draws the plots (also saved as DIR/plots/*.png) and writes DIR/report.html.
Importing this module is cheap: matplotlib is imported only when plots are drawn.
`render_html(view, images)` is the pure part: a `plots.data.RunView` and PNG bytes in, text out.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from plots.data import OutcomeRow, Timeline
from stress.report._view import RunView, load_run
from stress.rundir import PLOTS_DIR, REPORT_FILE

# What each plot answers, shown under it.
CAPTIONS = {
    "outcomes": "How each round ended, by outcome pattern; red bars are forbidden outcomes.",
    "wins": "Who won the probes. A fair race spreads wins; Jain's index 1 is perfectly even.",
    "latency": "How long racing calls took, by outcome; p50 (circle) and p99 (triangle).",
    "lock-wait": "How long calls waited for the target's lock.",
    "timeline": "One row per task, one bar per call from invocation to response.",
}

_CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0.15em 0.6em; border-radius: 0.3em; color: #fff;
         font-weight: bold; }
.OK, .ACCEPTABLE { background: #2a9d55; } .VIOLATION, .FORBIDDEN { background: #c62828; }
.UNKNOWN, .UNSPECIFIED { background: #7b5ea7; } .INTERESTING { background: #e0a800; }
.ungraded { background: #9e9e9e; }
.WARN { background: #6d8fb3; }
figure { margin: 1em 0 2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.7em; overflow-x: auto; }
tr.conflict td { background: #fdecea; }
.problems li { color: #c62828; }
"""


def _badge(text: str) -> str:
    cls = text if text else "ungraded"
    return f'<span class="badge {html.escape(cls)}">{html.escape(text or "ungraded")}</span>'


def _facts(view: RunView) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in view.facts
    )
    return f'<section id="run"><h2>Run</h2><table class="facts">{rows}</table></section>'


def _verdicts(view: RunView) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(c.name)}</td><td>{_badge(c.label)}</td>"
        f"<td>{html.escape(c.message)}</td></tr>"
        for c in view.checks
    )
    out = (
        '<section id="verdicts"><h2>Verdicts</h2><table class="checks">'
        f"<tr><th>check</th><th>verdict</th><th>why</th></tr>{rows}</table>"
    )
    if view.problems:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in view.problems)
        out += f'<p>Problems that make rounds unjudgeable:</p><ul class="problems">{items}</ul>'
    return out + "</section>"


def _outcome_table(rows: tuple[OutcomeRow, ...]) -> str:
    total = sum(r.count for r in rows) or 1
    body = "".join(
        f"<tr><td>{html.escape(r.outcome)}</td><td class='num'>{r.count}</td>"
        f"<td class='num'>{100 * r.count / total:.1f}%</td><td>{_badge(r.grade)}</td>"
        f"<td>{html.escape(r.description)}</td></tr>"
        for r in rows
    )
    return (
        "<table class='outcomes'><tr><th>outcome</th><th>rounds</th><th>share</th>"
        f"<th>grade</th><th>meaning</th></tr>{body}</table>"
    )


def _outcomes(view: RunView) -> str:
    out = '<section id="outcomes"><h2>Outcomes</h2>'
    if not view.run.outcomes:
        return out + "<p>No graded outcomes.</p></section>"
    out += _outcome_table(view.run.outcomes)
    if view.compat_outcomes:
        out += "<p>Compat reading (a hint fallback counts as a failed probe):</p>"
        out += _outcome_table(view.compat_outcomes)
    return out + "</section>"


def _plots(images: dict[str, bytes]) -> str:
    figures = []
    for name, data in images.items():
        encoded = base64.b64encode(data).decode("ascii")
        caption = html.escape(CAPTIONS.get(name, name))
        figures.append(
            f'<figure id="plot-{html.escape(name)}">'
            f'<img alt="{html.escape(name)} plot" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return f'<section id="plots"><h2>Plots</h2>{"".join(figures)}</section>'


def _counterexample(cex: Timeline | None) -> str:
    if cex is None:
        return ""
    origin = min((c.call for c in cex.calls), default=0)
    rows = []
    for c in sorted(cex.calls, key=lambda c: (c.call, c.task)):
        ret = "pending" if c.ret is None else str(c.ret - origin)
        order = "" if c.order is None else str(c.order)
        cls = ' class="conflict"' if c.conflict else ""
        rows.append(
            f"<tr{cls}><td class='num'>{order}</td><td class='num'>{c.task}</td>"
            f"<td>{html.escape(c.label)}</td><td class='num'>{c.call - origin}</td>"
            f"<td class='num'>{ret}</td><td>{html.escape(c.reason)}</td></tr>"
        )
    return (
        '<section id="counterexample"><h2>Counterexample</h2>'
        f"<p>{html.escape(cex.title)}. Numbered calls form the longest order the checker could "
        "build; highlighted calls are those it got stuck on (none of them can come next).</p>"
        '<table class="counterexample"><tr><th>order</th><th>task</th><th>call</th>'
        f"<th>invoked ({html.escape(cex.clock)})</th><th>returned</th><th>why stuck</th></tr>"
        f"{''.join(rows)}</table></section>"
    )


def _replay(view: RunView) -> str:
    if not view.replay:
        return ""
    return (
        '<section id="replay"><h2>Replay</h2><p>Run this again with:</p>'
        f"<pre><code>{html.escape(view.replay)}</code></pre></section>"
    )


def render_html(view: RunView, images: dict[str, bytes]) -> str:
    """The report page for ``view`` with ``images`` (plot name -> PNG bytes) inlined."""
    verdict = view.verdict.value
    title = f"mmrace report: {view.name}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(view.run.title)} — overall verdict {_badge(verdict)}</p></header>"
        f"{_verdicts(view)}{_replay(view)}{_counterexample(view.counterexample)}"
        f"{_outcomes(view)}{_plots(images)}{_facts(view)}"
        "</body></html>\n"
    )


def write_report(
    run_dir: Path | str,
    out: Path | None = None,
    *,
    save_plots: bool = True,
    view: RunView | None = None,
) -> Path:
    """Write DIR/report.html (or ``out``) for a run directory; returns the report's path.

    Also saves the plots as DIR/plots/*.png unless ``save_plots`` is False. ``view`` skips
    reading the directory again when the caller already loaded it. Raises
    `stress.errors.UsageError` for a missing directory or malformed files.
    """
    from plots import save

    run_dir = Path(run_dir)
    if view is None:
        view = load_run(run_dir)
    images = save.render(save.run_layouts(view.run))
    if save_plots:
        plot_dir = run_dir / PLOTS_DIR
        plot_dir.mkdir(parents=True, exist_ok=True)
        for name, data in images.items():
            (plot_dir / f"{name}.png").write_bytes(data)
    path = out if out is not None else run_dir / REPORT_FILE
    path.write_text(render_html(view, images), encoding="utf-8")
    return path
