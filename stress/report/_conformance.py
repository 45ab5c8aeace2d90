"""The conformance matrix as a self-contained HTML page (DIR/report.html of `mmrace
conformance`), from conformance.json alone: one row per case, the spec's answer, the target's,
and a badge per reading (agree, disagree, could not run, n/a)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from stress.report._html import _CSS, _badge
from stress.rundir import REPORT_FILE

_CLASS = {"agree": "OK", "disagree": "VIOLATION", "could not run": "UNKNOWN", "n/a": "ungraded"}


def _mark(value: str) -> str:
    cls = _CLASS.get(value, "UNKNOWN")
    return f'<span class="badge {cls}">{html.escape(value)}</span>'


def render_conformance_html(data: dict[str, Any]) -> str:
    """The page for a conformance.json document."""
    target = data.get("target") or {}
    name = str(target.get("spec", "?")) + (
        f" under {target['wrapper']}" if target.get("wrapper") else ""
    )
    title = f"mmrace conformance: {name}"
    rows = []
    for r in data.get("rows", []):
        cls = ' class="conflict"' if "disagree" in (r.get("strict"), r.get("compat")) else ""
        text = [html.escape(str(r.get(k, ""))) for k in ("id", "request", "spec", "target")]
        marks = [_mark(str(r.get(k))) for k in ("strict", "compat")]
        cells = [*text, *marks, html.escape(str(r.get("reason", "")))]
        rows.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    counts = "".join(
        f"<tr><th>{html.escape(mode)}</th>"
        + "".join(f"<td>{n} {html.escape(k)}</td>" for k, n in c.items())
        + "</tr>"
        for mode, c in (data.get("counts") or {}).items()
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1>"
        f"<p>The spec's public cases and the race workloads — verdict "
        f"{_badge(str(data.get('verdict', 'UNKNOWN')))}</p></header>"
        f"<h2>Counts</h2><table>{counts}</table>"
        "<h2>Cases</h2><table><tr><th>case</th><th>request</th><th>spec</th><th>target</th>"
        f"<th>strict</th><th>compat</th><th>reason</th></tr>{''.join(rows)}</table>"
        "</body></html>\n"
    )


def write_conformance_report(out: Path, data: dict[str, Any]) -> Path:
    """Write DIR/report.html for a conformance matrix; returns its path."""
    path = out / REPORT_FILE
    path.write_text(render_conformance_html(data), encoding="utf-8")
    return path
