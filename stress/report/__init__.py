"""The report: a judged run directory in words, as a self-contained HTML page, as JUnit XML.

It reads what the earlier stages wrote (summary.json, run.json; sweep.json and mutants.json) and
never re-judges: `load_run` builds the `RunView`, `write_report` the page and its plots,
`write_junit` the XML, `format_summary` the text `mmrace run` prints. `warm_up` starts the
plot workers early (they import matplotlib while the caller does something else).
"""

from stress.report._files import (
    MUTANTS_FILE,
    SWEEP_FILE,
    load_mutants,
    load_sweep,
    mutants_to_json,
    read_json,
    sweep_to_json,
)
from stress.report._html import render_html, write_report
from stress.report._junit import junit_xml, write_junit
from stress.report._render import render as render_plots
from stress.report._render import warm_up
from stress.report._sweep import SWEEP_HTML, sweep_html, write_sweep_report
from stress.report._text import format_summary
from stress.report._view import Check, RunView, load_run

__all__ = [
    "MUTANTS_FILE",
    "SWEEP_FILE",
    "SWEEP_HTML",
    "Check",
    "RunView",
    "format_summary",
    "junit_xml",
    "load_mutants",
    "load_run",
    "load_sweep",
    "mutants_to_json",
    "read_json",
    "render_html",
    "render_plots",
    "sweep_html",
    "sweep_to_json",
    "warm_up",
    "write_junit",
    "write_report",
    "write_sweep_report",
]
