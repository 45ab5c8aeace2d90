"""The spec's public cases shipped in the package (workloads/spec_cases.json) are current."""

from __future__ import annotations

import attrs
import pytest

import mm
import workloads
from tests.mm import test_spec_cases as t
from tests.workloads import spec_cases_gen as gen


@pytest.mark.skipif(
    not gen.SPEC.is_file(), reason=f"the spec page {gen.SPEC} is not beside the project"
)
def test_the_shipped_copy_is_the_spec_s_table() -> None:
    spec = gen.SPEC.read_text(encoding="utf-8")
    rows = gen.spec_rows(spec)
    assert len(rows) > 40 and rows[0]["id"] == "KS1"
    shipped = gen.SHIPPED.read_text(encoding="utf-8")
    assert shipped == gen.render(spec), "regenerate: python -m tests.workloads.spec_cases_gen"


def test_every_sequential_case_is_the_one_checked_on_the_model_and_kernel() -> None:
    tested = {c.id: c for c in t.CASES}
    cases = workloads.spec_cases()
    assert [c.id for c in cases if c.kind == "race"] == ["RACE1", "RACE2"]
    for case in cases:
        if case.kind == "race":
            assert case.workload in workloads.catalog()
        elif case.id in t.PRIV_CASES:
            op, priv, unpriv = t.PRIV_CASES[case.id]
            assert case.ops == (op,)
            assert case.expected_results(True) == (t.expected_value(priv),)
            assert case.expected_results(False) == (t.expected_value(unpriv),)
        else:
            want = tested[case.id]
            anon = [tuple(attrs.evolve(op, fd=-1) for op in ops) for ops in (want.setup, want.ops)]
            assert (case.setup, case.ops, case.expect) == (*anon, want.expect)
            assert case.arena == t.ARENAS[want.arena]
            assert case.expected_results(True) == tuple(t.expected_value(v) for v in want.expect)
    assert {c.id for c in cases if c.needs} == {"LTP17"}  # a file descriptor
    assert all(isinstance(op, mm.Op) for c in cases for op in c.ops)
