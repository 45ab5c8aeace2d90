"""JUnit XML for CI systems: one testcase per check of a run.

A failed check becomes a `<failure>`; a check that could not judge (UNKNOWN: timeout,
interference, crashed agent) becomes an `<error>`, so CI never shows it as passed. A check
that passed with a caveat (WARN: the calls rarely overlapped, as the run's own warning says)
becomes `<skipped>` with the message: neither a pass nor a failure.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from stress.report._view import RunView
from stress.verdict import Verdict


def junit_xml(view: RunView, suite: str = "mmrace") -> str:
    """The JUnit XML document (a `<testsuites>` with one `<testsuite>`) for ``view``."""
    failures = sum(c.verdict is Verdict.VIOLATION for c in view.checks)
    errors = sum(c.verdict is Verdict.UNKNOWN for c in view.checks)
    skipped = sum(c.label == "WARN" for c in view.checks)
    seconds = sum(c.seconds for c in view.checks)
    root = ET.Element(
        "testsuites",
        tests=str(len(view.checks)),
        failures=str(failures),
        errors=str(errors),
        time=f"{seconds:.3f}",
    )
    ts = ET.SubElement(
        root,
        "testsuite",
        name=f"{suite}.{view.name}",
        tests=str(len(view.checks)),
        failures=str(failures),
        errors=str(errors),
        skipped=str(skipped),
        time=f"{seconds:.3f}",
    )
    props = ET.SubElement(ts, "properties")
    for key, value in view.facts:
        ET.SubElement(props, "property", name=key, value=value)
    for check in view.checks:
        case = ET.SubElement(
            ts,
            "testcase",
            classname=f"{suite}.{view.name}",
            name=check.name,
            time=f"{check.seconds:.3f}",
        )
        if check.verdict is Verdict.VIOLATION:
            failure = ET.SubElement(case, "failure", message=check.message, type="VIOLATION")
            failure.text = check.message
        elif check.verdict is Verdict.UNKNOWN:
            ET.SubElement(case, "error", message=check.message, type="UNKNOWN").text = check.message
        elif check.label == "WARN":
            ET.SubElement(case, "skipped", message=check.message)
    out_lines = [*(f"problem: {p}" for p in view.problems)]
    if view.replay:
        out_lines.append(f"replay: {view.replay}")
    if out_lines:
        ET.SubElement(ts, "system-out").text = "\n".join(out_lines)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(view: RunView, path: Path) -> Path:
    """Write ``junit_xml(view)`` to ``path``; returns the path."""
    path.write_text(junit_xml(view), encoding="utf-8")
    return path
