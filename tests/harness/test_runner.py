"""The runner's duties towards targets: declared regions, dead targets and late problems, the
two overlap measures (summary, report checks, JUnit), and per-round record counts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
import trio

import mm
import workloads
from stress.driver import perform
from stress.harness import RaceOutcome, TargetOptions, contested, really_raced
from stress.harness._model import ModelTarget
from stress.harness._runner import RunConfig, execute
from stress.history import Operation, read_history
from tests.helpers import assert_judged_ok

P = 4096
B = 0x100000000000
NR = mm.MAP_PRIVATE | mm.MAP_ANONYMOUS | mm.MAP_FIXED_NOREPLACE
RW = mm.PROT_READ | mm.PROT_WRITE
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux")


def cfg(out: Path, workload: str = "same-page", *, tasks: int = 4, rounds: int = 5) -> RunConfig:
    return RunConfig(
        workloads.get(workload), workload, TargetOptions(seed=3), tasks, rounds, None, out
    )


# --- declared regions --------------------------------------------------------------------


class Declaring(ModelTarget):
    """Remembers what the runner told it, and in which order."""

    def __init__(self, options: TargetOptions) -> None:
        super().__init__(options)
        self.events: list[tuple[Any, ...]] = []

    def declare_regions(self, regions: Iterable[tuple[int, int]]) -> None:
        self.events.append(("declare", list(regions)))

    async def open(self, tasks: int, space: workloads.Space) -> None:
        self.events.append(("open", space))
        await super().open(tasks, space)


def test_regions_are_declared_before_open(tmp_path: Path) -> None:
    config = cfg(tmp_path / "run", "zero-page", rounds=2)
    target = Declaring(config.target)
    trio.run(execute, config, target)
    (what, regions), (then, space) = target.events
    assert (what, then) == ("declare", "open")
    assert regions == config.workload.regions(4, space)
    assert any(hi <= 0x20000 for _, hi in regions)  # page 0: outside the arena


@pytest.mark.kernel
@linux
def test_kernel_target_reserves_the_declared_low_region_when_it_opens(tmp_path: Path) -> None:
    from stress.harness._kernel import KernelTarget

    seen: list[list[str]] = []

    class Watched(KernelTarget):
        async def open(self, tasks: int, space: workloads.Space) -> None:
            await super().open(tasks, space)
            seen.append([str(a) for a in self.arenas])  # before any round ran

    config = cfg(tmp_path / "k", "zero-page", rounds=5)
    summary = perform(config, Watched(config.target), check_timeout=30, handle_sigint=False)
    assert_judged_ok(summary["exit_code"], summary)  # the native engine may not really race
    assert any(a.startswith("[0x0,") for a in seen[0]), seen


@pytest.mark.kernel
@linux
@pytest.mark.parametrize("engine", ["native", "python"])
@pytest.mark.parametrize("workload", ["zero-page", "hint-vs-fixed"])
def test_kernel_runs_of_workloads_outside_the_arena(
    tmp_path: Path, workload: str, engine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from stress.cli import main

    argv = ["run", workload, "--target", "kernel", "--engine", engine, "--tasks", "4"]
    code = main([*argv, "--rounds", "20", "--out", str(tmp_path / "r"), "--no-progress"])
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["problems"] == [], capsys.readouterr()
    assert_judged_ok(code, summary)


# --- dead targets and late problems ---------------------------------------------------------


class Dying(ModelTarget):
    """Dies in the cleanup of round `at`: the death is only in `late_problems` and `dead`."""

    def __init__(self, options: TargetOptions, at: int) -> None:
        super().__init__(options)
        self.at = at
        self.dead: str | None = None
        self.late_problems: list[str] = []
        self.races = 0

    async def run_serial(self, round_index: int, ops: Sequence[mm.Op]) -> list[Operation]:
        if self.dead is not None:
            return []
        if round_index == self.at:
            self.dead = "died in a cleanup (test)"
            self.late_problems.append(f"target {self.dead}")
            return [Operation(0, op, None, 10**9, None, round_index) for op in ops]  # pending
        return await super().run_serial(round_index, ops)

    async def run_race(self, round_index: int, plans: Sequence[Sequence[mm.Op]]) -> RaceOutcome:
        self.races += 1
        return await super().run_race(round_index, plans)


def test_a_death_in_the_last_cleanup_makes_the_run_unknown(tmp_path: Path) -> None:
    config = cfg(tmp_path / "last", rounds=4)
    summary = perform(config, Dying(config.target, at=3), check_timeout=30, handle_sigint=False)
    assert summary["rounds"] == 4 and summary["interrupted"] is None
    assert summary["problems"] == ["target died in a cleanup (test)"]
    assert summary["verdict"] == "UNKNOWN" and summary["exit_code"] == 3
    assert any("died in a cleanup" in r for r in summary["reasons"])
    _, reader = read_history(tmp_path / "last" / "history.jsonl")
    list(reader)
    assert reader.trailer is not None
    assert reader.trailer["problems"] == ["target died in a cleanup (test)"]


def test_the_rounds_stop_once_the_target_is_dead(tmp_path: Path) -> None:
    config = cfg(tmp_path / "stop", rounds=10)
    target = Dying(config.target, at=2)
    summary = perform(config, target, check_timeout=30, handle_sigint=False)
    assert target.races == 3 and summary["rounds"] == 3
    assert summary["interrupted"] == "the target died"
    assert summary["verdict"] == "UNKNOWN"
    assert summary["problems"] == ["target died in a cleanup (test)"]


agent = linux


@pytest.mark.kernel
@agent
def test_an_agent_killed_in_the_last_cleanup_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stress.harness._agent import AgentTarget

    monkeypatch.delenv("MMRACE_AGENT_FAULT", raising=False)

    class KilledAtTheEnd(AgentTarget):
        async def run_serial(self, round_index: int, ops: Sequence[mm.Op]) -> list[Operation]:
            if round_index == 2 and self._proc is not None:
                self._proc.kill()
            return await super().run_serial(round_index, ops)

    config = cfg(tmp_path / "agent", rounds=3)
    target = KilledAtTheEnd(TargetOptions(spec="agent", seed=3), timeout=5)
    summary = perform(config, target, check_timeout=30, handle_sigint=False)
    assert summary["rounds"] == 3
    assert summary["verdict"] == "UNKNOWN", summary
    assert "killed by signal 9" in summary["problems"][0]
    assert "round 2, serial" in summary["problems"][0]


def run_cli(tmp_path: Path, *argv: str) -> tuple[int, dict[str, Any]]:
    from stress.cli import main

    out = tmp_path / "cli"
    code = main(["run", *argv, "--out", str(out), "--no-progress", "--no-report", "--seed", "2"])
    summary = json.loads((out / "summary.json").read_text()) if code != 2 else {}
    return code, summary


@pytest.mark.kernel
@agent
def test_an_agent_dying_in_a_race_stops_the_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMRACE_AGENT_FAULT", "exit:1")
    code, summary = run_cli(tmp_path, "--target", "agent", "--tasks", "3", "--rounds", "10")
    assert code == 3
    assert summary["rounds"] == 2 and summary["interrupted"] == "the target died"
    assert "exited with status 3" in summary["problems"][0]


@pytest.mark.kernel
@agent
def test_agent_timeout_flag_sets_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMRACE_AGENT_TIMEOUT", raising=False)
    monkeypatch.setenv("MMRACE_AGENT_FAULT", "hang:0")
    argv = ["--target", "agent", "--tasks", "2", "--rounds", "3", "--agent-timeout", "1.5"]
    code, summary = run_cli(tmp_path, *argv)
    assert code == 3
    assert summary["target_info"]["timeout"] == 1.5
    assert "sent no answer within 1.5 s" in summary["problems"][0]
    run = json.loads((tmp_path / "cli" / "run.json").read_text())
    assert run["agent_timeout"] == 1.5


def test_agent_timeout_is_for_the_agent_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run_cli(tmp_path, "--agent-timeout", "3")
    assert code == 2
    assert "--agent-timeout: only the agent target" in capsys.readouterr().err


# --- overlap -----------------------------------------------------------------------------


def probe(task: int, call: int, ret: int | None, won: bool, addr: int = B) -> Operation:
    op = mm.Op.mmap(addr, P, RW, NR)
    result = None if ret is None else (addr if won else -mm.EEXIST)
    return Operation(task, op, result, call, ret)


def test_contested_needs_the_winner_in_flight_with_a_competitor() -> None:
    # the winner overlaps one loser: contested, though not all calls share an instant
    pair = [probe(0, 0, 10, True), probe(1, 5, 15, False), probe(2, 20, 30, False)]
    assert contested(pair, P) and not really_raced(pair)
    # the winner was done before anyone else started; the losers overlapping is no contest
    late = [probe(0, 0, 1, True), probe(1, 2, 8, False), probe(2, 3, 9, False)]
    assert not contested(late, P)
    # overlapping in time but far apart in the address space: nothing contested
    apart = [probe(0, 0, 10, True), probe(1, 0, 10, True, B + 8 * P)]
    assert not contested(apart, P) and really_raced(apart)
    # touching neighbours compete (mappings merge); a pending call never ends
    touching = [probe(0, 0, 10, True), probe(1, 5, 15, True, B + P)]
    assert contested(touching, P)
    assert contested([probe(0, 0, 1, True), probe(1, 0, None, False)], P)
    # the same task's calls never contest each other
    assert not contested([probe(0, 0, 10, True), probe(0, 5, 15, False)], P)


def test_contested_without_a_winner_counts_any_competing_pair() -> None:
    lost = [probe(0, 0, 10, False), probe(1, 5, 15, False)]
    assert contested(lost, P)
    assert not contested([probe(0, 0, 1, False), probe(1, 5, 15, False)], P)


class Stamped:
    """Task 0 always wins the same-page probe; `layout` says when each task's call runs."""

    name = "stamped"
    clock = "ns"

    def __init__(self, layout: str) -> None:
        self.layout = layout
        self.params = mm.Params.reference()
        self.describe: dict[str, Any] = {}
        self.now = 1000

    async def open(self, tasks: int, space: workloads.Space) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def run_serial(self, round_index: int, ops: Sequence[mm.Op]) -> list[Operation]:
        out = []
        for op in ops:
            result = op.addr if op.kind == "mmap" else 0
            out.append(Operation(0, op, result, self.now, self.now + 1, round_index))
            self.now += 2
        return out

    async def run_race(self, round_index: int, plans: Sequence[Sequence[mm.Op]]) -> RaceOutcome:
        t0, records = self.now, []
        for task, plan in enumerate(plans):
            paired = self.layout == "pair" or (self.layout == "once" and round_index == 0)
            if paired and task < 2:
                span = (t0 + 5 * task, t0 + 5 * task + 10)  # 0 and 1 overlap
            else:
                span = (t0 + 20 * task, t0 + 20 * task + 1)  # one after another
            op = plan[0]
            result = op.addr if task == 0 else -mm.EEXIST
            records.append(Operation(task, op, result, *span, round_index))
        self.now = t0 + 20 * len(plans) + 10
        return RaceOutcome(records, [], really_raced(records))


def test_summary_reports_both_overlap_figures(tmp_path: Path) -> None:
    config = cfg(tmp_path / "pair", rounds=6)
    summary = perform(config, Stamped("pair"), check_timeout=30, handle_sigint=False)
    overlap = summary["overlap"]
    assert summary["verdict"] == "OK", summary["reasons"]
    assert (overlap["rounds"], overlap["ratio"]) == (6, 1.0)
    assert (overlap["full_rounds"], overlap["full_ratio"]) == (0, 0.0)
    assert overlap["warning"] is None and summary["warnings"] == []


def test_a_race_that_never_raced_is_unknown_and_says_what_to_try(tmp_path: Path) -> None:
    out = tmp_path / "serial"
    summary = perform(cfg(out, rounds=6), Stamped("serial"), check_timeout=30, handle_sigint=False)
    assert summary["overlap"]["ratio"] == 0.0
    assert summary["verdict"] == "UNKNOWN" and summary["exit_code"] == 3  # nothing was verified
    assert summary["check"]["verdict"] == "OK"  # (every result is explained: it is not wrong)
    reason = summary["reasons"][0]
    assert reason.startswith("no round really raced: in none of the 6 round(s)")
    assert "(try more rounds or tasks, or a controlled scheduler)" in reason
    assert summary["warnings"] == []  # the verdict says it, not a warning


def test_a_race_that_rarely_raced_warns_and_junit_skips_not_errs(tmp_path: Path) -> None:
    from stress.report import junit_xml, load_run

    out = tmp_path / "once"
    summary = perform(cfg(out, rounds=20), Stamped("once"), check_timeout=30, handle_sigint=False)
    assert summary["overlap"]["rounds"] == 1
    assert summary["verdict"] == "OK"  # it says little, it is not wrong...
    assert summary["warnings"] == [summary["overlap"]["warning"]]  # ...and it says so
    assert "only 1 of 20 rounds really raced" in summary["warnings"][0]
    view = load_run(out)
    check = {c.name: c for c in view.checks}["race overlap"]
    assert check.label == "WARN" and check.message == summary["warnings"][0]
    xml = junit_xml(view)
    assert 'errors="0"' in xml and 'failures="0"' in xml and 'skipped="1"' in xml
    assert '<skipped message="only 1 of 20 rounds' in xml


def test_a_one_task_run_is_not_a_race(tmp_path: Path) -> None:
    config = cfg(tmp_path / "one", tasks=1, rounds=4)
    summary = perform(config, Stamped("serial"), check_timeout=30, handle_sigint=False)
    assert summary["verdict"] == "OK" and summary["warnings"] == []


# --- round records ---------------------------------------------------------------------------


def test_round_records_carry_setup_and_race_counts(tmp_path: Path) -> None:
    config = cfg(tmp_path / "churn", "churn", tasks=3, rounds=6)
    perform(config, ModelTarget(config.target), check_timeout=30, handle_sigint=False)
    _, reader = read_history(tmp_path / "churn" / "history.jsonl")
    ops = list(reader)
    space = workloads.Space.from_params(mm.Params.reference())
    for r in range(6):
        plan = config.workload.plan(r, 3, space, 3)
        record = reader.rounds[r]
        assert record["setup"] == len(plan.setup) == 1
        assert record["race"] == sum(len(t) for t in plan.tasks) == 3
        assert len([op for op in ops if op.round == r]) >= record["setup"] + record["race"]


def test_the_report_reads_the_judged_results_not_the_history(tmp_path: Path) -> None:
    from stress.report import load_run

    out = tmp_path / "run"
    config = cfg(out, "churn", tasks=3, rounds=5)
    summary = perform(config, ModelTarget(config.target), check_timeout=30, handle_sigint=False)
    (out / "history.jsonl").unlink()  # the report must not need it: nothing is re-judged
    view = load_run(out)
    assert summary["race_operations"] == 15
    assert view.run.probes == 10  # two of churn's three racing calls are probes, each round
    assert sum(view.run.wins) + view.run.lost == view.run.probes
