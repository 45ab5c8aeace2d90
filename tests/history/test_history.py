"""The history file format: round trips, streaming, and malformed input named by file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mm
from stress import history
from stress.errors import UsageError
from stress.history import Header, HistoryWriter, Operation, read_history, write_history

B = 0x100000000000


def _header() -> Header:
    return Header.create(
        "model",
        workload="same-page",
        seed=7,
        params=mm.Params.reference().to_json(),
        privileged=True,
        arena={"base": B, "size": 1 << 30},
        extra={"scheduler": "random"},
    )


def _ops() -> list[Operation]:
    return [
        Operation(0, mm.Op.mmap(B, 4096, mm.PROT_READ, mm.NR), B, 10, 20, 1),
        Operation(1, mm.Op.mmap(B, 4096, mm.PROT_READ, mm.NR), -mm.EEXIST, 11, 25, 1),
        Operation(2, mm.Op.mprotect(B, 4096, 7), None, 12, None, 1),
        Operation(0, mm.Op.munmap(B, 4096), 0, 30, 40, 1),
        Operation(3, mm.Op.mmap(0, 1 << 63, 0, 0x22, fd=5, offset=4096), -12, 41, 41, 2),
    ]


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    header = _header()
    assert write_history(path, header, _ops()) == 5
    got_header, reader = read_history(path)
    assert got_header == header
    assert list(reader) == _ops()
    assert reader.trailer == {"operations": 5}


def test_operation_keeps_the_mm_op() -> None:
    op = mm.Op.mmap(B, 4096, 3, mm.NR, fd=4, offset=8192)
    assert Operation(0, op, B, 1, 2).op == op


def test_lines_are_compact_ints(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    write_history(path, _header(), _ops()[:1])
    line = path.read_text().splitlines()[1]
    assert json.loads(line) == {
        "t": 0,
        "r": 1,
        "k": "mmap",
        "a": B,
        "n": 4096,
        "p": 1,
        "f": mm.NR,
        "c": 10,
        "e": 20,
        "x": B,
    }
    assert " " not in line


def test_writer_streams_round_records_and_identical_calls_are_shared(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path, _header(), flush_every=2) as writer:
        writer.write_many(_ops()[:2])
        # flushed after two lines: a reader sees them before the writer closes
        assert len(path.read_text().splitlines()) == 3
        writer.write_round(1, overlapped=True)
    _, reader = read_history(path)
    ops = list(reader)
    assert ops[0].op is ops[1].op
    assert reader.rounds == {1: {"round": 1, "overlapped": True}}


def test_killed_run_without_trailer_reads(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    text = json.dumps(_header().to_json()) + "\n"
    text += history.encode_operation(_ops()[0]) + "\n"
    path.write_text(text)
    _, reader = read_history(path)
    assert list(reader) == _ops()[:1]
    assert reader.trailer is None


def test_large_history_uses_batches(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    n = history.BATCH * 2 + 5
    ops = [Operation(i % 8, mm.Op("munmap", B, 4096), 0, i, i + 1, i // 8) for i in range(n)]
    write_history(path, _header(), ops)
    _, reader = read_history(path)
    assert list(reader) == ops


GOOD = '{"t":0,"r":0,"k":"mmap","a":4096,"n":4096,"p":3,"f":34,"c":1,"e":2,"x":4096}'
BAD_LINES = [
    ("{nope", "bad JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"t":0,"k":"mmap","a":1,"n":1,"c":1,"e":2}', "must both be present"),
    ('{"t":0,"k":"mmap","n":1,"c":1,"e":2,"x":0}', "missing key 'a'"),
    ('{"t":0,"k":"brk","a":1,"n":1,"c":1,"e":2,"x":0}', "unknown operation kind"),
    ('{"t":"0","k":"mmap","a":1,"n":1,"c":1,"e":2,"x":0}', "'t' must be an integer"),
    ('{"t":0,"k":"mmap","a":1,"n":1,"c":-5,"e":2,"x":0}', "'c' = -5 is out of range"),
    ('{"t":0,"k":"mmap","a":1,"n":1,"c":9,"e":2,"x":0}', "returns at 2 before its call at 9"),
    ('{"t":0,"k":"mmap","a":1.5,"n":1,"c":1,"e":2,"x":0}', "'a' must be an integer"),
    ('{"t":0,"k":"mmap","a":1,"n":1,"c":1,"e":2,"x":true}', "'x' must be an integer"),
    ('{"t":0,"k":"mmap","a":1,"n":1,"c":1,"e":2,"x":-99999}', "'x' = -99999 is out of range"),
    ('{"hello":1}', "missing key 'k'"),
    ('{"end":{"operations":7}}', "trailer counts 7 operations"),
    # lines the typed fast decoder reads but whose remaining checks fail, or that it rejects
    ('{"t":0,"k":"mmap","a":18446744073709551616,"n":1,"c":1,"e":2,"x":0}', "'a' = 1844"),
    ('{"t":0,"k":"mmap","a":1,"n":1,"c":1,"e":2,"x":18446744073709551616}', "'x' = 1844"),
    ('{"t":0,"k":"mmap","a":1,"n":1,"c":9223372036854775808,"e":2,"x":0}', "'c' = 9223"),
    ('{"t":0,"k":"mmap","a":1,"n":1,"fd":-2,"c":1,"e":2,"x":0}', "'fd' = -2 is out"),
    ('{"t":0,"k":"mmap","a":1,"n":1,"fd":2147483648,"c":1,"e":2,"x":0}', "'fd' = 2147483648"),
    ('{"t":false,"k":"mmap","a":1,"n":1,"c":1,"e":2,"x":0}', "'t' must be an integer"),
    ('{"t":0,"k":"mmap","a":1,"n":1,"c":1,"e":null,"x":0}', "must both be present"),
    ('{"t":0,"k":"mmap","a":1,"n":1,"c":1,"e":2,"x":0} {}', "bad JSON: Extra data"),
    ('{"t":0,"k":"mmap","a":1,"n":1,"c":1,"e":2,"x":0,}', "bad JSON"),
]


@pytest.mark.parametrize(("line", "problem"), BAD_LINES)
def test_malformed_line_named_with_its_number(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(_header().to_json()) + "\n" + GOOD + "\n" + line + "\n")
    _, reader = read_history(path)
    with pytest.raises(UsageError, match=f"^{path}:3: .*{problem}"):
        list(reader)


# Lines the standard json module reads but the strict fast decoder does not (or reads only in
# part): the reader must take them as before, with the same values.
ODD_GOOD = [
    ('  {"t":0,"k":"mmap","a":4096,"n":4096,"p":3,"f":34,"c":1,"e":2,"x":4096}  ', {}),
    ('{"t":9,"t":0,"k":"mmap","a":4096,"n":4096,"p":3,"f":34,"c":1,"e":2,"x":4096}', {}),
    ('{"t":0,"k":"mmap","a":4096,"n":4096,"p":3,"f":34,"c":1,"e":2,"x":4096,"z":NaN}', {}),
    ('{"t":0,"k":"mmap","a":4096,"n":4096,"p":3,"f":34,"c":1,"e":2,"x":4096,"z":"\\ud800"}', {}),
    ('{"t":0,"k":"\\u006dmap","a":4096,"n":4096,"p":3,"f":34,"c":1,"e":2,"x":4096}', {}),
    ('{"t":0,"k":"mmap","a":4096,"n":4096,"p":3,"f":34,"c":1,"e":null,"x":null}', {"ret": None}),
    ('{"t":0,"k":"mmap","a":4096,"n":4096,"p":3,"f":34,"c":1}', {"ret": None}),
]


@pytest.mark.parametrize(("line", "change"), ODD_GOOD)
def test_lines_outside_the_fast_path_read_the_same(
    tmp_path: Path, line: str, change: dict[str, None]
) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(json.dumps(_header().to_json()) + "\n" + GOOD + "\n" + line + "\n")
    _, reader = read_history(path)
    first, second = list(reader)
    expected = first if not change else Operation(0, first.op, None, 1, None, 0)
    assert second == expected
    assert second.op is first.op  # identical calls still share one Op


def test_error_after_blank_lines_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    body = [GOOD, "", "   ", GOOD, "", '{"t":0}']
    path.write_text(json.dumps(_header().to_json()) + "\n" + "\n".join(body) + "\n")
    _, reader = read_history(path)
    with pytest.raises(UsageError, match=f"^{path}:7: missing key 'k'"):
        list(reader)


def test_bad_line_deep_in_a_batch(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    lines = [GOOD] * (history.BATCH + 10)
    lines[history.BATCH + 3] = GOOD.replace('"c":1', '"c":3')
    path.write_text(json.dumps(_header().to_json()) + "\n" + "\n".join(lines) + "\n")
    _, reader = read_history(path)
    with pytest.raises(UsageError, match=rf":{history.BATCH + 5}: returns at 2 before its call"):
        list(reader)


def test_line_after_trailer_rejected(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    write_history(path, _header(), _ops()[:1])
    with path.open("a") as f:
        f.write(GOOD + "\n")
    _, reader = read_history(path)
    with pytest.raises(UsageError, match=":4: line after the trailer"):
        list(reader)


@pytest.mark.parametrize(
    ("first", "problem"),
    [
        ("", "empty file"),
        ("{bad", "bad JSON in header"),
        ('{"target":"x"}', "not an mmrace history"),
        ('{"mmrace_history":99,"target":"x"}', "unknown history format version 99"),
        ('{"mmrace_history":1}', "missing header key 'target'"),
        ('{"mmrace_history":1,"target":"x","seed":"s"}', "'seed' has the wrong type"),
        ('{"mmrace_history":1,"target":"x","arena":{"base":-1,"size":1}}', "'base' = -1"),
    ],
)
def test_bad_header(tmp_path: Path, first: str, problem: str) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text(first + ("\n" if first else ""))
    with pytest.raises(UsageError, match=f"^{path}:1: .*{problem}"):
        read_history(path)


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        read_history(tmp_path / "absent.jsonl")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "h.jsonl"
    path.write_bytes(json.dumps(_header().to_json()).encode() + b"\n\xff\xfe\n")
    with pytest.raises(UsageError, match="not UTF-8"):
        _, reader = read_history(path)
        list(reader)


_u64 = st.integers(0, (1 << 64) - 1)
_ops_strategy = st.lists(
    st.builds(
        lambda task, rnd, kind, a, n, p, f, c, d, x, pending: Operation(
            task,
            mm.Op(kind, a, n, p, f),
            None if pending else x,
            c,
            None if pending else c + d,
            rnd,
        ),
        st.integers(0, 1000),
        st.integers(0, 1 << 40),
        st.sampled_from(history.KINDS),
        _u64,
        _u64,
        _u64,
        _u64,
        st.integers(0, 1 << 62),
        st.integers(0, 1 << 40),
        st.integers(history.MIN_RESULT, (1 << 64) - 1),
        st.booleans(),
    ),
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(_ops_strategy)
def test_round_trip_any_operations(tmp_path_factory: pytest.TempPathFactory, ops: list) -> None:
    path = tmp_path_factory.mktemp("h") / "h.jsonl"
    write_history(path, _header(), ops)
    _, reader = read_history(path)
    assert list(reader) == ops
