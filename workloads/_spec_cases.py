"""The spec's public cases (spec page linux-mmap.md), shipped as data: workloads/spec_cases.json.

Each case keeps the spec table's text (existing mappings, request, expected) and, for the
sequential ones, the machine form: setup ops (which must succeed), request ops and expected
results (an address or 0, an errno name, or OTHER: a non-fixed mmap placed at some other
allowed address). The race rows name the catalog workload that races them. The file is
generated (tests/workloads/spec_cases_gen.py) and checked against the spec page by the tests,
so `mmrace conformance` works from an installed package without the spec beside it.
"""

from __future__ import annotations

import json
from importlib import resources

import attrs

import mm

OTHER = "OTHER"


@attrs.frozen
class SpecCase:
    """One public case; `ops`/`expect` are empty for a race row (see the module docstring)."""

    id: str
    kind: str  # "sequential" or "race"
    existing: str
    request: str
    expected: str
    arena: tuple[int, int] = (0, 0)
    setup: tuple[mm.Op, ...] = ()
    ops: tuple[mm.Op, ...] = ()
    expect: tuple[int | str, ...] = ()
    expect_unprivileged: tuple[int | str, ...] | None = None
    workload: str | None = None
    needs: str | None = None  # why no agent-protocol target can run it, if so

    def expected_results(self, privileged: bool) -> tuple[int | str, ...]:
        """The expected results: addresses/0, -errno values, or OTHER."""
        unpriv = self.expect_unprivileged
        raw = self.expect if privileged or unpriv is None else unpriv
        return tuple(-mm.errno_value(v) if isinstance(v, str) and v != OTHER else v for v in raw)


def _op(data: list[int | str]) -> mm.Op:
    kind, addr, length, prot, flags = data
    return mm.Op(str(kind), int(addr), int(length), int(prot), int(flags))


def spec_cases() -> list[SpecCase]:
    """The shipped cases, in the spec's order."""
    text = resources.files("workloads").joinpath("spec_cases.json").read_text(encoding="utf-8")
    doc = json.loads(text)
    arenas = {name: (int(lo), int(hi)) for name, (lo, hi) in doc["arenas"].items()}
    out = []
    for c in doc["cases"]:
        unpriv = c.get("expect_unprivileged")
        out.append(
            SpecCase(
                id=c["id"],
                kind=c["kind"],
                existing=c["existing"],
                request=c["request"],
                expected=c["expected"],
                arena=arenas[c["arena"]] if "arena" in c else (0, 0),
                setup=tuple(_op(o) for o in c.get("setup", ())),
                ops=tuple(_op(o) for o in c.get("ops", ())),
                expect=tuple(c.get("expect", ())),
                expect_unprivileged=None if unpriv is None else tuple(unpriv),
                workload=c.get("workload"),
                needs=c.get("needs"),
            )
        )
    return out
