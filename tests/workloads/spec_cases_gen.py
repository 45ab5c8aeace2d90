"""Generate workloads/spec_cases.json: the spec's public cases, shipped with the package.

The text columns (existing, request, expected) are the spec table's rows verbatim
(../shared/spec/linux-mmap.md); the machine-readable form of each sequential case is the one
tests/mm/test_spec_cases.py checks against the model and the kernel. The race rows (RACE1,
RACE2) name the catalog workload that races them. `python -m tests.workloads.spec_cases_gen`
rewrites the file; tests/workloads/test_spec_cases_shipped.py checks it is current.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import mm
from tests.mm import test_spec_cases as t

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT.parent / "shared" / "spec" / "linux-mmap.md"
SHIPPED = ROOT / "workloads" / "spec_cases.json"
RACES = {"RACE1": "same-page", "RACE2": "chain"}
COLUMNS = ("id", "existing", "request", "expected")


def spec_rows(text: str) -> list[dict[str, str]]:
    """The rows of the spec's public-case table, columns split at unescaped bars."""
    rows = []
    started = False
    for line in text.splitlines():
        if line.startswith("| id | existing mappings |"):
            started = True
            continue
        if not started or line.startswith("|---"):
            continue
        if not line.startswith("|"):
            break
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows.append(dict(zip(COLUMNS, cells, strict=True)))
    return rows


def _op(op: mm.Op) -> list[Any]:
    return [op.kind, op.addr, op.length, op.prot, op.flags]


def build(text: str) -> dict[str, Any]:
    """The shipped document for the spec `text`."""
    seq = {c.id: c for c in t.CASES}
    cases = []
    for row in spec_rows(text):
        case: dict[str, Any] = dict(row)
        cid = row["id"]
        if cid in RACES:
            case.update(kind="race", workload=RACES[cid])
        elif cid in t.PRIV_CASES:
            op, priv, unpriv = t.PRIV_CASES[cid]
            case.update(kind="sequential", arena="low", setup=[], ops=[_op(op)])
            case.update(expect=[priv], expect_unprivileged=[unpriv])
        else:
            c = seq[cid]
            case.update(kind="sequential", arena=c.arena, setup=[_op(o) for o in c.setup])
            case.update(ops=[_op(o) for o in c.ops], expect=list(c.expect))
            if any(o.fd == t.FILE_FD for o in (*c.setup, *c.ops)):
                case["needs"] = "a file descriptor (the agent protocol maps anonymous memory)"
        cases.append(case)
    arenas = {name: list(rng) for name, rng in t.ARENAS.items()}
    return {"source": "linux-mmap.md, Public test cases", "arenas": arenas, "cases": cases}


def render(text: str) -> str:
    """The document as JSON text, one case per line (diffs stay readable)."""
    doc = build(text)
    head = {k: v for k, v in doc.items() if k != "cases"}
    lines = [json.dumps(c) for c in doc["cases"]]
    return json.dumps(head)[:-1] + ', "cases": [\n' + ",\n".join(lines) + "\n]}\n"


if __name__ == "__main__":
    SHIPPED.write_text(render(SPEC.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {SHIPPED}")
