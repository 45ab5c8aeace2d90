"""Known answers: the checker reaches the Porcupine peer's verdicts on its etcd and kv histories.

The data is not part of the project: it is read from ``../shared/data/porcupine`` beside the
checkout (or ``$MMRACE_PORCUPINE_DATA``), and these tests skip when it is absent. The kv
histories are checked partitioned by key and also unpartitioned (whole map as one state), the
latter only for c01 and c10: unpartitioned c50 takes minutes (the peer does not try it either).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stress.checker import Event, Verdict, check
from stress.errors import UsageError
from stress.selftest.kv import GET, KvModel
from stress.selftest.porcupine import (
    ENV_VAR,
    etcd_histories,
    etcd_verdicts,
    kv_histories,
    parse_etcd_log,
    parse_kv_log,
)
from stress.selftest.register import CAS, READ, UNKNOWN, WRITE, RegisterModel


def _data_dir() -> Path:
    env = os.environ.get(ENV_VAR)
    return (
        Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data" / "porcupine"
    )


DATA = _data_dir()
needs_data = pytest.mark.skipif(
    not (DATA / "README.md").is_file(),
    reason=f"Porcupine known-answer data not found at {DATA} (set ${ENV_VAR} to its folder)",
)


@needs_data
def test_readme_lists_102_etcd_verdicts() -> None:
    verdicts = etcd_verdicts(DATA)
    assert len(verdicts) == 102
    assert "etcd_095" not in verdicts
    assert sum(verdicts.values()) == 23
    assert verdicts["etcd_002"] and not verdicts["etcd_000"]


@needs_data
def test_all_etcd_verdicts_match() -> None:
    model = RegisterModel()
    wrong = []
    for name, events, linearizable in etcd_histories(DATA):
        assert 73 <= len(events) <= 90, name
        result = check(model, events, workers=1)
        expected = Verdict.OK if linearizable else Verdict.VIOLATION
        if result.verdict is not expected:
            wrong.append((name, result.verdict, result.reason))
        if result.verdict is Verdict.VIOLATION:
            assert result.counterexample is not None and result.counterexample.stuck
    assert wrong == []


@needs_data
@pytest.mark.parametrize("name", ["c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad"])
def test_kv_partitioned(name: str) -> None:
    (events, linearizable) = _kv(name)
    result = check(KvModel(), events, workers=1)
    assert result.verdict is (Verdict.OK if linearizable else Verdict.VIOLATION), result.reason
    assert result.partitions == len({e.input[1] for e in events})


@needs_data
@pytest.mark.parametrize("name", ["c01-ok", "c01-bad", "c10-ok", "c10-bad"])
def test_kv_unpartitioned(name: str) -> None:
    (events, linearizable) = _kv(name)
    result = check(KvModel(), events, partitioned=False)
    assert result.verdict is (Verdict.OK if linearizable else Verdict.VIOLATION), result.reason
    assert result.partitions == 1


def _kv(name: str) -> tuple[list[Event], bool]:
    found = {n: (events, ok) for n, events, ok in kv_histories(DATA)}
    assert set(found) == {"c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad"}
    return found[name]


def test_etcd_parser(tmp_path: Path) -> None:
    log = tmp_path / "etcd.log"
    log.write_text(
        "noise line\n"
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\n"
        "INFO  jepsen.util - 1   :invoke :cas    [1 2]\n"
        "INFO  jepsen.util - 2\t:invoke\t:write\t4\n"
        "INFO  jepsen.util - 0\t:ok\t:read\t3\n"
        "INFO  jepsen.util - 1\t:fail\t:cas\t[1 2]\n"
        "INFO  jepsen.util - 2\t:info\t:write\t:timed-out\n"
        "INFO  jepsen.util - 3\t:invoke\t:read\tnil\n"
        "INFO  jepsen.util - 3\t:fail\t:read\t:timed-out\n"
    )
    assert parse_etcd_log(log) == [
        Event(0, (READ,), 3, 2, 5),
        Event(1, (CAS, 1, 2), False, 3, 6),
        Event(3, (READ,), UNKNOWN, 8, 9),
        Event(2, (WRITE, 4), None, 4, None),
    ]


def test_etcd_parser_rejects_a_response_without_a_call(tmp_path: Path) -> None:
    log = tmp_path / "etcd.log"
    log.write_text("INFO  jepsen.util - 0\t:ok\t:read\t3\n")
    with pytest.raises(UsageError, match=r"etcd.log:1: process 0 responds without an open call"):
        parse_etcd_log(log)


def test_kv_parser(tmp_path: Path) -> None:
    log = tmp_path / "kv.txt"
    log.write_text(
        '{:process 1, :type :invoke, :f :get, :key "7", :value nil}\n'
        '{:process 1, :type :ok, :f :get, :key "7", :value "x 1 y"}\n'
        '{:process 2, :type :invoke, :f :append, :key "7", :value "z"}\n'
    )
    assert parse_kv_log(log) == [
        Event(1, (GET, "7", None), "x 1 y", 1, 2),
        Event(2, ("append", "7", "z"), None, 3, None),
    ]
    log.write_text("{:process 1, :type :bogus}\n")
    with pytest.raises(UsageError, match=r"kv.txt:1: not a kv operation line"):
        parse_kv_log(log)


def test_bench_registry_and_table() -> None:
    from stress.selftest import bench_checker

    calls: list[int] = []

    def fake(repeat: int) -> list[bench_checker.Figure]:
        calls.append(repeat)
        return [bench_checker.Figure("fake figure", 0.5, "s", 1.0, True, "a note")]

    bench_checker.register("fake-test", fake)
    figures = bench_checker.run(["fake-test"], repeat=2)
    assert calls == [2] and [f.name for f in figures] == ["fake figure"]
    table = bench_checker.format_table(figures)
    assert "fake figure" in table and "0.500 s" in table and "a note" in table
    assert "porcupine" in bench_checker.available()
    with pytest.raises(UsageError, match="bench 'nope': unknown"):
        bench_checker.run(["nope"])
    with pytest.raises(UsageError, match="porcupine data: not found"):
        bench_checker.bench_porcupine(Path("/nonexistent"), repeat=1)


def test_peer_figures_read_from_the_readme(tmp_path: Path) -> None:
    from stress.selftest import bench_checker

    (tmp_path / "README.md").write_text(
        "## The peer's figures\n| all 102 etcd histories, one after another | 0.47 s |\n"
        "## Measured again (newest)\n| history | time |\n|---|---|\n"
        "| all 102 etcd histories | 0.91–0.98 s in total |\n"
        "| kv c50-ok / c50-bad, partitioned by key | 0.235–0.239 s / 0.036–0.039 s |\n"
        "| kv c10-ok / c10-bad, unpartitioned | 3.5–3.8 s / 4.1 s |\n"
    )
    assert bench_checker.peer_figures(tmp_path) == {
        "etcd": 0.91,
        "c50-ok": 0.235,
        "c50-bad": 0.036,
        "c10-ok": 3.5,
        "c10-bad": 4.1,
    }
    (tmp_path / "README.md").write_text("no figures here\n")
    assert bench_checker.peer_figures(tmp_path) == {}


@needs_data
def test_bench_notes_give_the_peer_figure_and_ratio() -> None:
    from stress.selftest import bench_checker

    figures = bench_checker.bench_porcupine(DATA, repeat=1)
    assert len(figures) == 5
    for f in figures:
        assert "peer " in f.note and "ratio " in f.note, f.note
        assert "WRONG VERDICT" not in f.note


@needs_data
def test_minimize_shrinks_a_real_violation() -> None:

    from stress.checker import minimize

    model = RegisterModel()
    name, events, linearizable = etcd_histories(DATA)[0]
    assert name == "etcd_000" and not linearizable
    shrunk = minimize(model, events, timeout=30)
    assert check(model, shrunk).verdict is Verdict.VIOLATION
    assert len(shrunk) < len(events) // 2
    originals = set(events) | {e.replace(ret=None) for e in events}
    assert set(shrunk) <= originals


def test_bench_without_the_data_skips_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stress.selftest import bench_checker

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "absent"))
    (figure,) = bench_checker.run(["porcupine"], repeat=1)
    assert figure.skipped and figure.ok and figure.target is None
    assert str(tmp_path / "absent") in figure.note and ENV_VAR in figure.note
