"""The HTML report of a run: one self-contained file (inline CSS, JS and PNGs, no network).

`write_report(run_dir)` is what `mmrace run` and `mmrace report` call: it reads the run
directory, draws the plots (also saved as DIR/plots/*.png; in parallel worker processes,
`stress.report._render`) and writes DIR/report.html. Importing this module is cheap:
matplotlib is imported only where plots are drawn. `render_html(view, images)` is the pure
part: a `RunView` and PNG bytes in, text out. The page stays small at any run size: tables
and pictures show at most a fixed number of rows and say how many they leave out.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from plots.data import KERNEL_START_ORDER_NOTE, OutcomeRow, Timeline, scheduler_note
from stress.report import _render, _svg
from stress.report._view import RunView, load_run
from stress.rundir import PLOTS_DIR, REPORT_FILE

MAX_TABLE_ROWS = 60  # rows of the outcome and counterexample tables at most

# What each plot answers, shown under it.
CAPTIONS = {
    "outcomes": "How each round ended, by outcome pattern; red bars are forbidden outcomes.",
    "wins": "Who won the probes. A fair race spreads wins; Jain's index 1 is perfectly even.",
    "latency": "How long racing calls took, by outcome; p50 (circle) and p99 (triangle).",
    "lock-wait": "How long calls waited for the target's lock.",
    "timeline": "One row per task, one bar per call from invocation to response.",
    "winner-rank": "Where the winner stood among the round's callers by call start: a spike "
    "at 1 means whoever starts first wins.",
    "in-flight": "How many racing calls were in flight at once, per round: a race that raced "
    "has its rounds near the task count.",
    "latency-time": "Latency across the run, per bin of rounds: a slope is drift (warm-up, "
    "a slowing target).",
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
.UNKNOWN { background: #607d8b; } .UNSPECIFIED { background: #8e44ad; }
.INTERESTING { background: #e0a800; color: #222; }
.ungraded { background: #9e9e9e; }
.WARN { background: #6d8fb3; }
figure { margin: 1em 0 2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.7em; overflow-x: auto; }
tr.conflict td { background: #fdecea; }
.problems li { color: #c62828; }
.host { color: #444; font-size: 0.95em; }
.note { background: #fff6d6; border: 1px solid #e0a800; padding: 0.4em 0.7em; }
p.more { color: #555; font-style: italic; }
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


def _host(view: RunView) -> str:
    if not view.host:
        return ""
    parts = " · ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in view.host)
    return f'<p class="host" id="host">host: {parts}</p>'


def _more(hidden: int, what: str) -> str:
    return f'<p class="more">{hidden} more {what} not shown.</p>' if hidden > 0 else ""


def _outcome_table(all_rows: tuple[OutcomeRow, ...]) -> str:
    total = sum(r.count for r in all_rows) or 1
    rows = all_rows[:MAX_TABLE_ROWS]
    body = "".join(
        f"<tr><td>{html.escape(r.outcome)}</td><td class='num'>{r.count}</td>"
        f"<td class='num'>{100 * r.count / total:.1f}%</td><td>{_badge(r.grade)}</td>"
        f"<td>{html.escape(r.description)}</td></tr>"
        for r in rows
    )
    return (
        "<table class='outcomes'><tr><th>outcome</th><th>rounds</th><th>share</th>"
        f"<th>grade</th><th>meaning</th></tr>{body}</table>"
        + _more(len(all_rows) - len(rows), "outcome patterns")
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


def _plots(view: RunView, images: dict[str, bytes]) -> str:
    figures = []
    run = view.run
    for name, data in images.items():
        encoded = base64.b64encode(data).decode("ascii")
        caption = html.escape(CAPTIONS.get(name, name))
        if name == "wins" and run.target == "kernel":
            note = scheduler_note(run.target, run.scheduler, run.engine)
            if note == KERNEL_START_ORDER_NOTE:
                caption += (
                    ' <span class="note">Kernel-target wins are dominated by the harness\'s '
                    "start order (python engine): the threads are released in task order, so "
                    "the first started win most. Read the winner-rank plot, not fairness.</span>"
                )
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
    ordered = sorted(cex.calls, key=lambda c: (not c.conflict, c.call, c.task))[:MAX_TABLE_ROWS]
    for c in sorted(ordered, key=lambda c: (c.call, c.task)):
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
        "build (the dark line runs through them in that order); red calls are those it got "
        "stuck on (none of them can come next): hover a call for why, move the slider to "
        "replay the order.</p>"
        f"{_svg.explorer(cex)}"
        '<table class="counterexample"><tr><th>order</th><th>task</th><th>call</th>'
        f"<th>invoked ({_unit(cex.clock)})</th><th>returned</th><th>why stuck</th></tr>"
        f"{''.join(rows)}</table>"
        f"{_more(len(cex.calls) - len(ordered), 'calls')}</section>"
    )


def _unit(clock: str) -> str:
    return "steps" if clock == "steps" else "ns"


def _replay(view: RunView) -> str:
    if view.replay:
        return (
            '<section id="replay"><h2>Replay</h2><p>Run this again with:</p>'
            f"<pre><code>{html.escape(view.replay)}</code></pre></section>"
        )
    if view.rerun:
        return (
            '<section id="replay"><h2>Run again</h2><p>This run cannot be replayed (real '
            "clocks: the same seed gives the same plans, not the same interleavings). The same "
            "settings again:</p>"
            f'<pre><code class="rerun">{html.escape(view.rerun)}</code></pre></section>'
        )
    return ""


def render_html(view: RunView, images: dict[str, bytes]) -> str:
    """The report page for ``view`` with ``images`` (plot name -> PNG bytes) inlined."""
    verdict = view.verdict.value
    title = f"mmrace report: {view.name}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(view.run.title)} — overall verdict {_badge(verdict)}</p>"
        f"{_host(view)}</header>"
        f"{_verdicts(view)}{_replay(view)}{_counterexample(view.counterexample)}"
        f"{_outcomes(view)}{_plots(view, images)}{_facts(view)}"
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
    run_dir = Path(run_dir)
    if view is None:
        view = load_run(run_dir)
    images = _render.render("run", view.run)
    if save_plots:
        plot_dir = run_dir / PLOTS_DIR
        plot_dir.mkdir(parents=True, exist_ok=True)
        for name, data in images.items():
            (plot_dir / f"{name}.png").write_bytes(data)
    path = out if out is not None else run_dir / REPORT_FILE
    path.write_text(render_html(view, images), encoding="utf-8")
    return path
