"""The fast scan (`stress.checker._fast`, `native/scan.c`) never makes a verdict wrong.

The scan counts a segment as linearizable, unjudged, when its key equals that of a segment the
checker proved linearizable. Two independent checks of that shortcut:
- the brute-force oracle (`tests/checker/oracle`): a tiny history, then the same history moved,
  retimed and with its tasks renamed (same key), then a variant of it (a result, a stamp, a
  task, an address changed); the scan's verdict on the file must be the oracle's on the parts;
- a round that is a violation only because of one field (its real-time order, result, length,
  address, flags, offset, task), after many linearizable rounds that differ from it in that
  field alone: the scan must judge it, and find the violation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import mm
from stress.checker import Scanned, ScanUnsure, StreamCheck, Verdict, scan_file
from stress.checker._fast import library
from stress.errors import UsageError
from tests.checker.oracle import brute
from tests.checker.oracle.brute import Call
from tests.checker.oracle.strategies import Tiny, histories

P = 4096
B = 0x100000000000
RW = mm.PROT_READ | mm.PROT_WRITE
ANON = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS
GAP = 1_000  # between parts: every part is serial after the one before
I63 = 1 << 63

try:
    library()
except Exception as exc:  # no C compiler: the scan is not there to test
    pytest.skip(f"the fast scan cannot be built: {exc}", allow_module_level=True)


def write(path: Path, params: mm.Params, parts: Sequence[Sequence[Call]]) -> list[Call]:
    """A history of ``parts`` one after another, each closed by a munmap of everything it
    may have mapped (a clean cut, unless a call is pending); returns its calls."""
    header = {"mmrace_history": 1, "target": "model", "params": params.to_json()}
    lines = [json.dumps(header)]
    calls: list[Call] = []
    t = 0
    count = 0
    for r, part in enumerate(parts):
        first = min(c.call for c in part)
        end = t
        for c in part:
            line: dict[str, object] = {"t": c.task, "r": r, "k": c.op.kind, "a": c.op.addr}
            line |= {"n": c.op.length, "p": c.op.prot, "f": c.op.flags, "fd": c.op.fd}
            line |= {"o": c.op.offset, "c": c.call - first + t}
            ret = None if c.ret is None else c.ret - first + t
            calls.append(c._replace(call=c.call - first + t, ret=ret))
            if ret is not None:
                line |= {"e": ret, "x": c.result}
                end = max(end, ret)
            end = max(end, c.call - first + t)
            lines.append(json.dumps(line))
        lo, hi = _span(part, params)
        task = max(c.task for c in part) + 1  # a task of its own: named alike in copies
        close = {"t": task, "r": r, "k": "munmap", "a": lo, "n": hi - lo, "c": end + 1}
        lines.append(json.dumps(close | {"e": end + 2, "x": 0}))
        calls.append(Call(task, mm.Op.munmap(lo, hi - lo), 0, end + 1, end + 2))
        lines.append(json.dumps({"round": r}))
        count += len(part) + 1
        t = end + GAP
    lines.append(json.dumps({"end": {"operations": count}}))
    path.write_text("\n".join(lines) + "\n")
    return calls


def _span(part: Sequence[Call], params: mm.Params) -> tuple[int, int]:
    """The pages a closing munmap unmaps: the part's pages, a little wider, when they are in
    the arena (so that the part stays movable, and moves with it); else everything below
    TASK_SIZE."""
    ranges = [mm.page_range(c.op, P) for c in part]
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    if lo >= B - 64 * P and hi <= B + (1 << 30):
        return (lo & -P) - 16 * P, mm.page_align(hi, params) + 16 * P  # moves with the part
    return 0, params.task_size


def scanned(path: Path, params: mm.Params) -> Scanned:
    """The file through the scan, cut at every round record and every segment judged as soon
    as it is cut, so that a key is proved before the next segment comes."""
    return scan_file(path, StreamCheck(params), batch=1, cut_at=2)


def oracle(params: mm.Params, calls: Sequence[Call]) -> bool | None:
    return brute.check(params, calls).linearizable


def renamed(calls: Sequence[Call], pages: int) -> list[Call]:
    """The same history moved by whole pages (when every call may move), its stamps doubled
    (an order-preserving retiming) and its tasks renamed: the scan gives it the same key."""
    names = {t: 7 + 3 * k for k, t in enumerate(sorted({c.task for c in calls}, reverse=True))}
    d = pages * P

    def move(c: Call) -> Call:
        op = c.op
        moved = mm.Op(op.kind, op.addr + d, op.length, op.prot, op.flags, op.fd, op.offset)
        result = c.result
        if op.kind == "mmap" and result is not None and result >= 0:
            result += d
        return Call(names[c.task], moved, result, 2 * c.call, None if c.ret is None else 2 * c.ret)

    return [move(c) for c in calls]


def movable(calls: Sequence[Call], params: mm.Params) -> bool:
    from stress.checker._mm_shift import movable_span

    return all(
        movable_span(c.op, params) is not None
        and (
            c.result is None
            or c.result < 0
            or c.result == (c.op.addr if c.op.kind == "mmap" else 0)
        )
        for c in calls
    )


@st.composite
def variants(draw: st.DrawFn, calls: Sequence[Call]) -> list[Call]:
    """``calls`` with one thing changed: a result, a stamp, a task, an address."""
    out = list(calls)
    k = draw(st.integers(0, len(out) - 1))
    c = out[k]
    what = draw(st.sampled_from(["result", "call", "ret", "task", "addr"]))
    if what == "result" and c.ret is not None:
        choices = [0, -mm.EEXIST, -mm.ENOMEM, -mm.EINVAL, c.op.addr, c.op.addr + P]
        out[k] = c._replace(result=draw(st.sampled_from(choices)))
    elif what == "call":
        top = c.call if c.ret is None else c.ret
        out[k] = c._replace(call=draw(st.integers(max(0, c.call - 30), top)))
    elif what == "ret" and c.ret is not None:
        out[k] = c._replace(ret=draw(st.integers(c.call, c.ret + 30)))
    elif what == "task":
        out[k] = c._replace(task=draw(st.sampled_from(sorted({x.task for x in out}))))
    elif what == "addr":
        op = c.op
        addr = op.addr + draw(st.sampled_from([P, -P, 1]))
        out[k] = c._replace(op=mm.Op(op.kind, addr, op.length, op.prot, op.flags, op.fd, op.offset))
    return out


def _sequential(calls: Sequence[Call]) -> bool:
    """Does each task's call start only after its previous call returned (or touch it)?"""
    ends: dict[int, int | None] = {}
    for c in sorted(calls, key=lambda c: c.call):
        if c.task in ends:
            end = ends[c.task]
            if end is None or end > c.call:
                return False
        ends[c.task] = c.ret
    return True


def _fits(calls: Sequence[Call]) -> bool:
    """Every value within the scan's strict form (the rest goes to the Python reader)."""
    return all(
        0 <= v < I63 for c in calls for v in (c.op.addr, c.op.length, c.op.prot, c.op.flags)
    ) and all(c.result is None or -4095 <= c.result < I63 for c in calls)


def test_the_scan_agrees_with_the_oracle_on_repeats_and_near_repeats(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tally = {"eligible": 0, "repeats": 0}  # movable with no pending call: cut, so repeated

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(st.data(), st.booleans())
    def agrees(data: st.DataObject, only_movable: bool) -> None:
        tiny: Tiny = data.draw(histories(movable=only_movable))
        first = list(tiny.calls)
        assume(_fits(first))
        params = tiny.params
        pages = data.draw(st.integers(1, 20)) if movable(first, params) else 0
        same = renamed(first, pages)
        again = renamed(first, 2 * pages)
        near = data.draw(variants(same))
        # well-formed: a task's calls follow one another (the engine and the oracle read
        # overlapping calls of one task differently; see the closing note of issue 14)
        assume(_fits(near) and _sequential(first) and _sequential(near))
        path = tmp_path_factory.mktemp("scan") / "history.jsonl"
        whole = write(path, params, [first, same, again, near])
        truth = oracle(params, whole)  # (a pending call ties the parts together)
        assume(truth is not None)
        try:
            got = scanned(path, params)
        except ScanUnsure as exc:
            pytest.fail(f"the scan refused a history of its strict form: {exc}")
        result = got.stream.result()
        want = Verdict.OK if truth else Verdict.VIOLATION
        assert result.verdict is want, (
            f"scan {result.verdict} ({result.reason}), oracle {truth}\n"
            f"first={first!r}\nnear={near!r}"
        )
        if pages and all(c.ret is not None for c in first):
            tally["eligible"] += 1
            tally["repeats"] += got.repeated > 0

    agrees()
    # the shortcut was taken often enough for the agreement to mean something
    assert tally["repeats"] >= tally["eligible"] // 4, tally


# --- one field makes the violation -----------------------------------------------------------


def _round(**change: int) -> list[Call]:
    """Two NOREPLACE probes of one page, one wins; ``change`` alters the loser (task, call,
    ret, result, addr, length, flags, offset)."""
    win = Call(0, mm.Op.mmap(B, P, RW, mm.NR), B, 10, 20)
    op = mm.Op(
        "mmap",
        change.get("addr", B),
        change.get("length", P),
        RW,
        change.get("flags", mm.NR),
        -1,
        change.get("offset", 0),
    )
    lose = Call(
        change.get("task", 1),
        op,
        change.get("result", -mm.EEXIST),
        change.get("call", 12),
        change.get("ret", 22),
    )
    return [win, lose]


# name: (the linearizable round, the violation that differs from it in one field)
VARIANTS: dict[str, tuple[dict[str, int], dict[str, int]]] = {
    "the loser returned before the winner was called": ({"call": 8}, {"call": 8, "ret": 9}),
    "both won": ({}, {"result": B}),
    "the loser asked for the next page": ({}, {"addr": B + P}),
    "the loser asked for no pages": ({}, {"length": 0}),
    "the loser's flags were MAP_FIXED": ({}, {"flags": ANON | mm.MAP_FIXED}),
    "the loser's offset was unaligned": ({}, {"offset": 1}),
    "the loser was the winner's task, called before it": ({"call": 5}, {"call": 5, "task": 0}),
    # one task's two calls at one instant: program order puts the one that returned first
    # first; only that decides (the real-time order and the order of the lines are alike)
    "the loser was the winner's task and returned first": (
        {"task": 0, "call": 10, "ret": 30},
        {"task": 0, "call": 10, "ret": 15},
    ),
}


@pytest.mark.parametrize("base, change", list(VARIANTS.values()), ids=list(VARIANTS))
def test_a_round_that_differs_in_one_field_is_judged(
    tmp_path: Path, base: dict[str, int], change: dict[str, int]
) -> None:
    params = mm.Params.reference()
    good, bad = _round(**base), _round(**change)
    assert oracle(params, good) is True
    assert oracle(params, bad) is False
    moved = [renamed(good, k) for k in range(1, 50)]
    write(tmp_path / "h.jsonl", params, [*moved, renamed(bad, 51), *moved])
    got = scanned(tmp_path / "h.jsonl", params)
    if len({c.task for c in good}) == len(good):
        assert got.repeated >= 90  # the linearizable rounds were counted as repeats
    else:  # a task's calls overlap: program order is not in the key, so none is
        assert got.repeated == 0
    assert got.stream.result().verdict is Verdict.VIOLATION


def test_a_segment_with_one_key_counts_once_and_every_call_is_counted(tmp_path: Path) -> None:
    params = mm.Params.reference()
    parts = [renamed(_round(call=8 if k % 2 else 12), k) for k in range(1, 200)]
    write(tmp_path / "h.jsonl", params, parts)
    got = scanned(tmp_path / "h.jsonl", params)
    result = got.stream.result()
    assert result.verdict is Verdict.OK
    assert result.operations == 3 * len(parts)  # two probes and the munmap, each round
    # two keys (which probe comes first in call order), each judged once, the rest repeats
    assert got.stream.segments == len(parts) and got.repeated == len(parts) - 2
    assert "repeat a segment judged linearizable" in result.reason


def test_the_checker_reads_the_file_with_python_when_the_scan_steps_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stress.driver import check_file

    params = mm.Params.reference()
    write(tmp_path / "h.jsonl", params, [renamed(_round(), k) for k in range(1, 5)])
    text = (tmp_path / "h.jsonl").read_text().replace('"p": 3', '"p": 3.0', 1)
    (tmp_path / "odd.jsonl").write_text(text)
    with pytest.raises(ScanUnsure, match="operation line"):
        scanned(tmp_path / "odd.jsonl", params)
    with pytest.raises(UsageError, match=r"'p' must be an integer, not 3\.0"):
        check_file(tmp_path / "odd.jsonl", None)
    assert check_file(tmp_path / "h.jsonl", None).verdict is Verdict.OK
