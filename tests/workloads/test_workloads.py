"""The workload catalog and TOML workloads: plans are valid, seeded, varied per round; every catalog
entry, raced on the atomic model in random whole-call interleavings, grades ACCEPTABLE/INTERESTING;
TOML files load to the same plans as catalog entries and malformed ones name the bad key."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import mm
import workloads
from stress.grading import RoundResult, grade_round
from stress.harness import undo_moved
from stress.history import Operation

EXAMPLES = Path(workloads.__file__).parent / "examples"
SPACE = workloads.Space()
NAMES = list(workloads.catalog())
TASK_COUNTS = (1, 2, 3, 5, 8, 64)


def test_catalog_has_the_documented_entries_and_default() -> None:
    assert NAMES[0] == workloads.DEFAULT == "same-page"
    assert set(NAMES) == {
        "same-page",
        "same-range",
        "partial-overlap",
        "adjacent",
        "chain",
        "churn",
        "hint-vs-fixed",
        "zero-page",
        "many-ranges",
        "mprotect-race",
        "boundary",
        "top",
        "mixed",
    }
    for name in NAMES:
        w = workloads.get(name)
        workloads.check_workload(w)
        assert len(w.summary) > 80 and w.short.endswith(".")


def test_unknown_name_lists_known() -> None:
    with pytest.raises(ValueError, match="unknown; known: same-page"):
        workloads.get("no-such")


def _inside(op: mm.Op, regions: list[tuple[int, int]]) -> bool:
    """Does every page `op` may change lie in a region? (A call the kernel rejects before it looks
    at any mapping, like one past TASK_SIZE, changes nothing: the fence's own rule.)"""
    from mm.kernel import guarded_range

    changed = guarded_range(op, SPACE.page_size, SPACE.task_size)
    if changed is None:
        return True
    return any(start <= changed[0] and changed[1] <= stop for start, stop in regions)


@pytest.mark.parametrize("name", NAMES)
def test_plans_are_valid_deterministic_and_vary(name: str) -> None:
    w = workloads.get(name)
    for tasks in TASK_COUNTS:
        regions = w.regions(tasks, SPACE)
        plans = [w.plan(r, tasks, SPACE, seed=7) for r in range(8)]
        for plan in plans:
            assert len(plan.tasks) == tasks == len(plan.labels)
            assert any(plan.tasks), "a round must race something"
            for ops, labels in zip(plan.tasks, plan.labels, strict=True):
                assert len(ops) == len(labels)
            every = (*plan.setup, *(o for ops in plan.tasks for o in ops), *plan.cleanup)
            for op in (*every, *plan.check):
                assert _inside(op, regions), (name, tasks, str(op), regions)
                assert op.addr % SPACE.page_size == 0 and op.length % SPACE.page_size == 0
        # Same seed, same plans, in any order of asking.
        assert plans[3] == w.plan(3, tasks, SPACE, seed=7)
        if w.span(tasks):  # arena workloads move their contested range every round
            assert len({p.base for p in plans}) > 1
            assert plans != [w.plan(r, tasks, SPACE, seed=8) for r in range(8)]


def test_zero_page_regions_include_page_zero_and_min_addr() -> None:
    space = workloads.Space(min_addr=65536)
    regions = workloads.get("zero-page").regions(4, space)
    assert regions == [(0, 4096), (65536, 65536 + 4096)]


def _round(
    w: workloads.Workload, plan: workloads.RoundPlan, params: mm.Params, rng: random.Random
) -> tuple[RoundResult, mm.State]:
    """Run a round on the atomic spec: setup, then the race as a random interleaving of whole
    calls (each task's ops in order), recording call/return times as positions."""
    state = mm.State()
    for op in plan.setup:
        result, state = mm.apply(state, params, op)
        assert result >= 0, f"setup {op} failed: {mm.errno_name(result)}"
    queue = [t for t, ops in enumerate(plan.tasks) for _ in ops]
    rng.shuffle(queue)
    done = [0] * len(plan.tasks)
    records = []
    for clock, task in enumerate(queue):
        op = plan.tasks[task][done[task]]
        done[task] += 1
        result, state = mm.apply(state, params, op)
        records.append(Operation(task, op, result, 2 * clock, 2 * clock + 1))
    return RoundResult.from_records(plan, records), state


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("privileged", [True, False])
def test_catalog_on_the_atomic_model_is_graded_allowed(name: str, privileged: bool) -> None:
    w = workloads.get(name)
    params = mm.Params.reference(privileged=privileged)
    rng = random.Random(f"{name}:{privileged}")
    seen: set[str] = set()
    for tasks in (1, 2, 3, 4, 7, 12):
        for r in range(6):
            plan = w.plan(r, tasks, SPACE, seed=11)
            result, state = _round(w, plan, params, rng)
            assert not result.problems
            for compat in (False, True):
                grade = grade_round(w, result, privileged=privileged, compat=compat)
                assert grade.verdict in (workloads.ACCEPTABLE, workloads.INTERESTING), (
                    name,
                    tasks,
                    grade,
                )
                seen.add(grade.key)
            # cleanup plus undoing stray hint placements leaves the address space empty, and
            # the footprint check's probes win (each then unmapped)
            for op in (*undo_moved(result.calls, params.page_size), *plan.cleanup):
                code, state = mm.apply(state, params, op)
                assert code == 0, str(op)
            assert state == mm.State(), f"{name}: round {r} left {state}"
            assert plan.check or not w.span(tasks), name  # (page 0 alone: no check)
            for op in plan.check:
                code, state = mm.apply(state, params, op)
                assert code == (op.addr if op.kind == "mmap" else 0), str(op)
            assert state == mm.State()
    assert seen


def test_hint_vs_fixed_reaches_both_outcomes_on_the_model() -> None:
    w = workloads.get("hint-vs-fixed")
    params = mm.Params.reference()
    rng = random.Random(3)
    verdicts = set()
    for r in range(40):
        result, _ = _round(w, w.plan(r, 4, SPACE, seed=1), params, rng)
        verdicts.add(grade_round(w, result, privileged=True).verdict)
    assert verdicts == {workloads.ACCEPTABLE, workloads.INTERESTING}


# ---- TOML -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["chain", "boundary", "top", "mixed"])
def test_example_toml_plans_like_the_catalog_entry(name: str) -> None:
    loaded = workloads.load_toml(EXAMPLES / f"{name}.toml")
    built_in = workloads.get(name)
    for tasks in (1, 4, 9):
        for r in range(7):
            assert loaded.plan(r, tasks, SPACE, 5) == built_in.plan(r, tasks, SPACE, 5)
    assert loaded == built_in


def test_every_shipped_example_loads_and_runs_allowed_on_the_model() -> None:
    files = sorted(EXAMPLES.glob("*.toml"))
    assert len(files) >= 2
    params = mm.Params.reference()
    rng = random.Random(0)
    for path in files:
        w = workloads.get(str(path))
        for tasks in (1, 3, 6):
            result, _ = _round(w, w.plan(0, tasks, SPACE, 2), params, rng)
            grade = grade_round(w, result, privileged=True)
            assert grade.verdict in (workloads.ACCEPTABLE, workloads.INTERESTING), (path, grade)


def test_toml_expresses_setup_cleanup_lists_and_labels() -> None:
    text = """
name = "x"
summary = "Custom."
[[setup]]
kind = "mmap"
pages = 3
flags = "PRIVATE|ANONYMOUS|FIXED"
[[race]]
kind = "munmap"
offset = ["task", 2]
tasks = "task < 3"
label = "unmap"
[[race]]
kind = "mprotect"
prot = "READ"
offset = "tasks - 1 - task"
[[cleanup]]
kind = "munmap"
pages = "tasks + 2"
[[grades]]
verdict = "acceptable"
when = "unmap_ok == unmap_calls and mprotect_calls == tasks"
description = "fine"
"""
    w = workloads.parse_toml(text, "x.toml")
    plan = w.plan(0, 4, SPACE, 1)
    page, base = SPACE.page_size, plan.base
    assert plan.setup == (mm.Op.mmap(base, 3 * page, 3, mm.parse_flags("PRIVATE|ANON|FIXED")),)
    assert plan.tasks[1] == (
        mm.Op.munmap(base + 2 * page, page),  # the list cycles: task 1 takes item 1
        mm.Op.mprotect(base + 2 * page, page, 1),
    )
    assert plan.tasks[2][0] == mm.Op.munmap(base + 2 * page, page)  # item 0 again: "task"
    assert plan.tasks[3] == (mm.Op.mprotect(base, page, 1),)
    assert plan.labels[0] == ("unmap", "mprotect")
    assert plan.cleanup == (mm.Op.munmap(base, 6 * page),)


BASE = """
name = "bad"
summary = "A test."
[[race]]
kind = "mmap"
[[grades]]
verdict = "ACCEPTABLE"
when = "winners == 1"
description = "ok"
"""


@pytest.mark.parametrize(
    ("change", "key", "problem"),
    [
        (('kind = "mmap"', 'kind = "mmap"\nflags = "PRIVATE|FIXD"'), "race[0].flags", "FIXD"),
        (('kind = "mmap"', 'kind = "mmap"\nprot = "RED"'), "race[0].prot", "RED"),
        (('kind = "mmap"', 'kind = "mmp"'), "race[0].kind", "unknown kind"),
        (('kind = "mmap"', 'kind = "mmap"\nofset = 1'), "race[0].ofset", "unknown key"),
        (('kind = "mmap"', 'kind = "mmap"\noffset = "task - 1"'), "race[0].offset", "negative"),
        (('kind = "mmap"', 'kind = "mmap"\noffset = "page"'), "race[0].offset", "page"),
        (('kind = "mmap"', 'kind = "mmap"\noffset = "__import__(1)"'), "race[0].offset", "min()"),
        (('kind = "mmap"', 'kind = "mmap"\npages = 0'), "race[0].pages", "at least 1"),
        (('kind = "mmap"', 'kind = "mmap"\npages = "min(task)"'), "race[0].pages", "iterable"),
        (('kind = "mmap"', 'kind = "mmap"\npages = "task // 0"'), "race[0].pages", "by zero"),
        (('kind = "mmap"', 'kind = "mmap"\nanchor = "top"'), "race[0].anchor", "unknown anchor"),
        (('kind = "mmap"', 'kind = "mmap"\nlabel = "a b"'), "race[0].label", "letters"),
        (('kind = "mmap"', 'kind = "munmap"\nflags = "FIXED"'), "race[0].flags", "only mmap"),
        (('kind = "mmap"', 'kind = "mmap"\ntasks = 3'), "race[0].tasks", "expression"),
        (('name = "bad"', ""), "name", "missing"),
        (('"winners == 1"', '"winers == 1"'), "grades[0].when", "winers"),
        (('"winners == 1"', '"munmap_ok == 1"'), "grades[0].when", "munmap_ok"),
        (('"winners == 1"', '"winners =="'), "grades[0].when", "cannot parse"),
        (('"ACCEPTABLE"', '"FINE"'), "grades[0].verdict", "must be one of"),
        (('summary = "A test."', 'summary = "A test."\nshuffle = 1'), "shuffle", "true or false"),
        (('[[race]]\nkind = "mmap"', ""), "race", "at least one"),
        (
            ('summary = "A test."', 'summary = "A test."\nfootprint_check = 0'),
            "footprint_check",
            "true or false",
        ),
        (('summary = "A test."', 'summary = "A test."\nboundary = 3'), "boundary", "a table"),
        (
            ('summary = "A test."', 'summary = "A test."\n[boundary]\nat = 1'),
            "boundary.spans",
            "missing",
        ),
        (
            ('summary = "A test."', 'summary = "A test."\n[boundary]\nspans = ["2MB"]'),
            "boundary.spans[0]",
            "2MiB",
        ),
        (
            ('summary = "A test."', 'summary = "A test."\n[boundary]\nspans = [12288]'),
            "boundary.spans",
            "power of two",
        ),
        (
            ('summary = "A test."', 'summary = "A test."\n[boundary]\nspans = ["1GiB"]\nat = 5'),
            "boundary.at",
            "outside the footprint",
        ),
        (
            ('summary = "A test."', 'summary = "A test."\n[boundary]\nspans = [8192]\nside = 1'),
            "boundary.side",
            "unknown key",
        ),
        (
            ('kind = "mmap"', 'kind = "mmap"\nanchor = "zero"\noffset = -1'),
            "race[0].offset",
            "negative",
        ),
    ],
)
def test_malformed_toml_names_the_key(change: tuple[str, str], key: str, problem: str) -> None:
    old, new = change
    assert old in BASE
    text = BASE.replace(old, new, 1)
    with pytest.raises(ValueError) as info:
        workloads.parse_toml(text, "bad.toml")
    message = str(info.value)
    assert message.startswith(f"bad.toml: key '{key}': "), message
    assert problem in message
    assert "\n" not in message


def test_toml_boundary_and_top_anchors_plan_where_they_say() -> None:
    text = BASE.replace(
        'summary = "A test."',
        'summary = "A test."\nfootprint_check = false\n'
        '[boundary]\nspans = ["1GiB", 2097152]\nat = [1]',
    )
    text = text.replace('kind = "mmap"', 'kind = "mmap"\npages = 2', 1)
    text += '[[race]]\nkind = "mmap"\nanchor = "task_size"\noffset = -1\nlabel = "top"\n'
    w = workloads.parse_toml(text, "b.toml")
    assert w.boundary == workloads.Boundary((1 << 30, 1 << 21), (1,)) and not w.footprint_check
    for r in range(4):
        plan = w.plan(r, 1, SPACE, 3)
        span = (1 << 30, 1 << 21)[r % 2]
        assert (plan.base + SPACE.page_size) % span == 0 and plan.check == ()
        assert plan.tasks[0][1] == mm.Op.mmap(SPACE.task_size - SPACE.page_size, 4096, 3, mm.NR)
    below, above = SPACE.base - SPACE.page_size, SPACE.end + SPACE.page_size
    top = (SPACE.task_size - SPACE.page_size, SPACE.task_size)
    assert w.regions(1, SPACE) == [(below, above), top]


def test_a_span_with_no_boundary_in_the_arena_is_refused() -> None:
    w = workloads.get("boundary")
    small = workloads.Space(base=0x100000200000, size=1 << 21)  # no 1 GiB boundary in it
    with pytest.raises(ValueError, match=r"boundary\.spans: no 1 GiB boundary in the arena"):
        w.plan(0, 4, small, 1)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^bad.toml: invalid TOML"):
        workloads.parse_toml("name = ", "bad.toml")
    with pytest.raises(ValueError, match="cannot read"):
        workloads.load_toml(tmp_path / "missing.toml")
    assert workloads.parse_toml(BASE).name == "bad"


# ---- mmrace list ------------------------------------------------------------------------------


def test_cmd_list_plain_verbose_json_and_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stress.cli import main

    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == NAMES
    assert main(["list", "--verbose", str(EXAMPLES / "guard-pages.toml")]) == 0
    out = capsys.readouterr().out
    assert "guard-pages" in out and "not losers_overlap" in out
    assert "boundary: 2 MiB, 1 GiB, 512 GiB (cycled); page 4 or 5 of the footprint" in out
    for name in ("boundary", "top", "mixed"):
        assert f"\n{name}\n  " in out
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in data] == NAMES and data[0]["default"]
    assert data[5]["definition"]["race"][3]["flags"] == "PRIVATE|FIXED|ANONYMOUS"
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE.replace('kind = "mmap"', 'kind = "mmap"\nflags = "FIXD"'))
    assert main(["list", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "key 'race[0].flags': unknown flag 'FIXD'" in err
