"""The pipeline driver: the one module that wires every stage of a run.

workload -> harness (race, record) -> history file -> checker -> grading -> judgement ->
summary.json -> report. `perform` runs a whole run; `check_file` judges any history file the
same way; `replay` re-runs a recorded run and compares; `RoundJudge` judges rounds one by one
(for `mmrace mutants`). The CLI's commands call these; the stages never call each other
backwards (the harness never grades, the report never re-judges).
"""

from __future__ import annotations

import contextlib
import gc
import json
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

import mm
import workloads
from stress import checker, grading, report
from stress.cbuild import NativeUnavailable
from stress.errors import UsageError, a, counted, counting_sigint, interruption, signals_seen
from stress.harness import (
    RaceOutcome,
    RoundLog,
    RunConfig,
    RunStats,
    ScheduleDiverged,
    StopFlag,
    Target,
    TargetOptions,
    execute,
    is_plugin,
    make_replay_target,
)
from stress.history import Header, Operation, follow_history, load_history, loads, read_history
from stress.rundir import HISTORY_FILE, RUN_FILE, SCHEDULE_FILE, SUMMARY_FILE, WORKLOAD_COPY
from stress.verdict import Verdict

SUMMARY_VERSION = 1
LOW_OVERLAP = 0.1
OVERLAP_DEFINITION = (
    "a call that won (returned a success) was in flight at the same instant as a call of "
    "another task whose page range overlaps or touches its own (when no call won: any two "
    "such calls)"
)
FULL_OVERLAP_DEFINITION = "all racing calls were in flight at one instant"


# --- configuration ---------------------------------------------------------------------------


def load_workload(ref: str) -> workloads.Workload:
    """A catalog name or a path to a .toml file; a UsageError names the problem."""
    try:
        if ref.endswith(".toml") or Path(ref).is_file():
            if not Path(ref).is_file():
                raise UsageError(f"workload {ref}: no such file")
            return workloads.load_toml(ref)
        return workloads.get(ref)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_json(config: RunConfig) -> dict[str, Any]:
    """The reproducible configuration of a run (what replay needs)."""
    opts = config.target
    return {
        "mmrace_run": 1,
        "workload": config.workload.name,
        "workload_ref": config.workload_ref,
        "target": opts.spec,
        "scheduler": opts.scheduler,
        "depth": opts.depth,
        "seed": opts.seed,
        "tasks": config.tasks,
        "rounds": config.rounds,
        "time_budget": config.time_budget,
        "variant": opts.variant,
        "wrapper": list(opts.wrapper),
        "noise": opts.noise,
        "privileged": opts.params.privileged if opts.params else None,
        "agent_timeout": opts.timeout,
        "agent_startup_timeout": opts.startup_timeout,
        "preemptions": opts.preemptions,
        "max_schedules": opts.max_schedules,
        "granularity": opts.granularity,
        "engine": opts.engine,
        "agent": opts.agent,
        "params": opts.params.to_json() if opts.params else None,
        "space": attrs.asdict(config.space) if config.space else None,
    }


def save_run_json(config: RunConfig) -> None:
    config.out.mkdir(parents=True, exist_ok=True)
    data = run_json(config)
    ref = Path(config.workload_ref)
    if ref.suffix == ".toml" and ref.is_file():
        shutil.copyfile(ref, config.out / WORKLOAD_COPY)
        data["workload_file"] = WORKLOAD_COPY
    (config.out / RUN_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def options_from_run_json(data: dict[str, Any], **overrides: Any) -> TargetOptions:
    params = mm.Params.from_json(data["params"]) if data.get("params") else None
    fields: dict[str, Any] = {
        "spec": data["target"],
        "seed": data["seed"],
        "scheduler": data["scheduler"],
        "depth": data["depth"],
        "wrapper": tuple(data.get("wrapper") or ()),
        "variant": data.get("variant"),
        "params": params,
        "noise": data.get("noise", True),
        "timeout": data.get("agent_timeout"),
        "startup_timeout": data.get("agent_startup_timeout"),
        "preemptions": data.get("preemptions", 2),
        "max_schedules": data.get("max_schedules", 10_000),
        "granularity": data.get("granularity", "line"),
        "engine": data.get("engine", "native"),
        "agent": data.get("agent", "python"),
    }
    fields.update(overrides)
    return TargetOptions(**fields)


# --- a whole run -----------------------------------------------------------------------------


@attrs.define(eq=False)
class Live:
    """What the progress display shows besides the harness's counts: rounds in which two
    overlapping NOREPLACE probes both won (a hint only; the checker judges), and what the
    judge racing beside the run has settled so far (`LiveJudge`)."""

    page_size: int = 4096
    double_wins: int = 0
    first_double_win: int | None = None
    rounds_checked: int = 0  # the judge: rounds whose calls are all checked
    verdict: str | None = None  # the judge's verdict so far (None: no judge, or nothing yet)
    first_violation: int | None = None  # the round of the first confirmed violation
    violation: str | None = None  # what it is
    violation_seen: float | None = None  # time.monotonic() when this process learned of it

    def __call__(self, stats: RunStats, log: RoundLog) -> None:
        if grading.double_win(log.race.records, self.page_size):
            self.double_wins += 1
            if self.first_double_win is None:
                self.first_double_win = log.index


Progress = Callable[[RunStats, Live], None]


class _Deferred:
    """The SIGINT handler while the race phase starts and ends (outside the harness's own
    handling of the rounds): a first Ctrl-C (or SIGTERM) asks the run to stop, so that setting
    up or closing the race is never torn in the middle; a second one raises."""

    def __init__(self, stop: StopFlag) -> None:
        self.stop = stop

    def __call__(self, signum: int, frame: object) -> None:
        if self.stop.requested:
            raise KeyboardInterrupt
        self.stop.request(f"interrupted ({interruption()})")


def perform(
    config: RunConfig,
    target: Target,
    *,
    check_timeout: float,
    progress: Progress | None = None,
    stop: StopFlag | None = None,
    handle_sigint: bool = True,
    on_round: Callable[[RunStats, RoundLog], None] | None = None,
    live_judge: bool = True,
    stop_on_violation: bool = False,
) -> dict[str, Any]:
    """Run, check, grade and judge; writes DIR/summary.json and returns the summary dict.

    With ``live_judge`` a separate process (`LiveJudge`) checks and grades the history while
    the race writes it, so when the race ends only its last segments are left to judge; the
    verdict is the one `check_file` gives on the file. ``stop_on_violation`` ends the race at
    the first violation the judge confirms. Under the exhaustive scheduler each schedule is
    judged as it ends and the search stops at the first failing one (its round is
    `first_failure` in the summary)."""
    live = Live(target.params.page_size)
    explorer = getattr(target, "explorer", None)
    searching = explorer is not None and not getattr(explorer, "replaying", False)
    first_failure: dict[str, Any] = {}
    detector = None
    if searching:
        space = config.space or workloads.Space.from_params(target.params)
        detector = RoundJudge(
            config.workload, config.target.seed, target.params, space, check_timeout
        )
    stop = stop or StopFlag()
    spec = GradeSpec(config.workload, config.tasks, config.target.seed, config.space)
    judge = None
    if live_judge:
        judge = LiveJudge(config.out / HISTORY_FILE, spec, check_timeout, live, stop_on_violation)
        judge.start(stop)

    def each_round(stats: RunStats, log: RoundLog) -> None:
        if detector is not None and not first_failure:
            found = detector(stats, log)
            if found is not None:
                first_failure.update(
                    round=log.index,
                    plan_round=log.plan,
                    choices=list(getattr(target, "last_choices", [])),
                    found=found,
                )
                assert explorer is not None
                explorer.stop(f"stopped at the first failing schedule (round {log.index})")
        live(stats, log)
        if progress is not None:
            progress(stats, live)
        if on_round is not None:
            on_round(stats, log)

    deferring = handle_sigint and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _Deferred(stop)) if deferring else None
    try:
        stats = trio.run(
            lambda: execute(
                config, target, stop=stop, on_round=each_round, handle_sigint=handle_sigint
            )
        )
    except BaseException:
        if judge is not None:
            judge.close(kill=True)
        raise
    finally:
        close = getattr(progress, "close", None)
        if close is not None:
            close()
        seen = signals_seen()
        if deferring:  # from here on Ctrl-C interrupts, and is counted (see _judge_after_race)
            signal.signal(signal.SIGINT, counting_sigint)
    try:
        if stop.requested and not stats.interrupted:  # (came as the race was ending)
            stats.interrupted = stop.reason
        return _judge_after_race(config, target, stats, judge, spec, check_timeout, progress,
                                 live, first_failure, stop_on_violation, seen)  # fmt: skip
    finally:
        if deferring:
            signal.signal(signal.SIGINT, previous)


def _judge_after_race(
    config: RunConfig,
    target: Target,
    stats: RunStats,
    judge: LiveJudge | None,
    spec: GradeSpec,
    check_timeout: float,
    progress: Any,
    live: Live,
    first_failure: dict[str, Any],
    stop_on_violation: bool,
    seen: int,
) -> dict[str, Any]:
    """Finish judging a raced history (the live judge's tail, or all of it here), grade and
    summarize. A Ctrl-C or SIGTERM meanwhile (even one whose KeyboardInterrupt Python
    swallowed in a ``__del__``: ``seen`` is the signal count before) leaves the run
    incomplete: what was judged is kept, an OK becomes UNKNOWN."""
    say = getattr(progress, "phase", None)
    if say is not None:
        note = f" (the live judge checked {live.rounds_checked:,} while racing)" if judge else ""
        say("check", f"grading {stats.rounds:,} rounds and checking their operations{note}")
    phases = dict(stats.phases)
    ended = time.perf_counter()
    late: str | None = None

    def interrupted() -> JudgedRun:
        nonlocal late
        late = f"interrupted ({interruption()}) while checking"
        return JudgedRun(
            grading.CheckSummary(Verdict.UNKNOWN, f"check {late}", 0, 0, 0), None, None, 0.0, {}
        )

    try:
        judged = judge.result() if judge is not None else None
    except KeyboardInterrupt:  # while the judge finishes: stop judging, keep the rest
        assert judge is not None
        judge.close(kill=True)
        judged = interrupted()
    if judged is None:  # no judge, or it could not follow the file: judge it now
        header, reader = read_history(config.out / HISTORY_FILE)
        reader.allow_torn = True
        try:
            judged = judge_stream(header, reader, check_timeout, grade=spec).summary()
        except checker.OutOfOrder:
            judged = _whole_run(config, spec, check_timeout)
        except KeyboardInterrupt:
            judged = interrupted()
    phases["grade"] = judged.grade_seconds
    phases["check"] = judged.check.seconds
    phases["judge_tail"] = time.perf_counter() - ended
    if late is None and signals_seen() > seen:  # a signal whose KeyboardInterrupt was lost
        late = f"interrupted ({interruption()}) while grading and checking"
    if late is not None and not stats.interrupted:
        stats.interrupted = late
    judgement = grading.judge(
        judged.check,
        judged.grader,
        rounds=stats.rounds,
        problems=stats.problems,
        problem_count=stats.problem_count,
        interrupted=stats.interrupted,
        racing_rounds=stats.racing_rounds,
        contested_rounds=stats.overlapped_rounds,
        no_race_hint=no_race_hint(target.name, target.describe),
        exploration=stats.exploration,
    )
    summary = build_summary(
        config,
        stats,
        judgement,
        grader=judged.grader,
        race=judged.race,
        live=live,
        phases=phases,
        target_name=target.name,
        describe=target.describe,
        clock=target.clock,
        replayable=target.clock == "steps",
        first_failure=first_failure or None,
    )
    summary["judge"] = {
        "live": judge is not None and judge.followed,
        **judged.stream,
        "first_violation": None
        if live.first_violation is None
        else {"round": live.first_violation, "what": live.violation},
        "stopped_on_violation": stop_on_violation and live.first_violation is not None,
    }
    write_summary(config.out, summary)
    done = getattr(progress, "done", None)
    if done is not None:
        done()
    return summary


@attrs.frozen
class JudgedRun:
    """What judging a run's history gave, in plain picklable values (from the judge process
    or from this one)."""

    check: grading.CheckSummary
    grader: grading.Grader | None
    race: grading.RaceStats | None
    grade_seconds: float
    stream: dict[str, Any]


def _whole_run(config: RunConfig, spec: GradeSpec, timeout: float) -> JudgedRun:
    """The run judged with the whole history in memory (its lines are out of call order)."""
    header, ops = load_history(config.out / HISTORY_FILE)
    _, reader = read_history(config.out / HISTORY_FILE)
    list(reader.records())
    params = checker.params_of(header)
    space = spec.space or workloads.Space.from_params(params, **(header.arena or {}))
    started = time.perf_counter()
    grader, race = grading.grade_history(
        spec.workload, spec.tasks, spec.seed, params, space, ops, reader.rounds
    )
    seconds = time.perf_counter() - started
    check = summarize_check(header, ops, timeout)
    return JudgedRun(check, grader, race, seconds, {"segments": None, "out_of_order": True})


class LiveJudge:
    """A process beside the race that follows its history file (`follow_history`) and judges
    it as a stream (`judge_stream`, the code `check_file` runs), so its verdict is the one
    `mmrace check` gives on the file. The race's threads only write the file; a thread of this
    process listens to the judge's messages and fills in `Live` (rounds checked, the verdict so
    far, the first violation the moment it is confirmed; with ``stop_on_violation`` it asks
    the race to stop then)."""

    def __init__(
        self,
        path: Path,
        spec: GradeSpec,
        timeout: float,
        live: Live,
        stop_on_violation: bool = False,
    ) -> None:
        self.path = path
        self.spec = spec
        self.timeout = timeout
        self.live = live
        self.stop_on_violation = stop_on_violation
        self.followed = False
        self._final: tuple[Any, ...] | None = None
        self._process: Any = None

    def start(self, stop: StopFlag) -> None:
        """Start the judge (a spawned process: the race's threads are not forked). When it
        cannot start, the run is judged after the race instead."""
        import multiprocessing
        import os
        import threading

        self.path.unlink(missing_ok=True)  # never follow an older run's file
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        args = (child, str(self.path), self.spec, self.timeout, os.getpid())
        try:
            self._process = ctx.Process(target=_judge_process, args=args, daemon=True)
            self._process.start()
        except Exception:
            self._process = None
            return
        finally:
            child.close()
        self._stop = stop
        # Wait until the judge is up (its imports take a second or so), so that the race's
        # first rounds are judged as promptly as the rest; a judge that does not come up is
        # given up and the run judged after the race.
        if not self._conn.poll(READY_SECONDS) or self._receive() != ("ready",):
            self.close()
            self._process = None
            return
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _receive(self) -> Any:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            return None

    def _listen(self) -> None:
        live = self.live
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                return
            kind = message[0]
            if kind == "progress":
                live.rounds_checked, live.verdict = message[1], message[2]
            elif kind == "violation":
                live.violation_seen = time.monotonic()
                live.first_violation, live.violation = message[1], message[2]
                live.verdict = Verdict.VIOLATION.value
                if self.stop_on_violation:
                    self._stop.request(f"stopped at the first violation (round {message[1]})")
            else:
                self._final = message
                return

    def result(self) -> JudgedRun | None:
        """Tell the judge the race is over, wait for its last segments; None when it failed
        (then the caller judges the file itself, which names the problem)."""
        if self._process is None:
            return None
        with contextlib.suppress(OSError):
            self._conn.send("done")
        self._thread.join()
        self.close()
        if self._final is None or self._final[0] != "result":
            return None
        self.followed = True
        judged: JudgedRun = self._final[1]
        return judged

    def close(self, *, kill: bool = False) -> None:
        """Wait for the judge process to end (``kill``: end it now)."""
        if self._process is not None:
            self._process.join(0 if kill else 5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._conn.close()


PROGRESS_SECONDS = 0.1
READY_SECONDS = 60.0  # generous: a loaded machine imports slowly


def _judge_process(conn: Any, path: str, spec: GradeSpec, timeout: float, parent: int) -> None:
    """The judge process (`LiveJudge`): follows the history until the race says it is done."""
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the race; the judge finishes
    done = False

    def finished() -> bool:
        nonlocal done
        if not done:
            try:
                done = conn.poll() and conn.recv() == "done"
            except (EOFError, OSError):
                done = True
            done = done or os.getppid() != parent
        return done

    last = 0.0
    told = False

    def progress(stream: checker.StreamCheck, index: int) -> None:
        nonlocal last, told
        if stream.violation is not None and not told:
            told = True
            conn.send(("violation", stream.violation_round, stream.violation.reason))
        now = time.monotonic()
        if now - last >= PROGRESS_SECONDS:
            last = now
            conn.send(("progress", stream.last_round + 1, stream.verdict.value))

    try:
        conn.send(("ready",))
        header, reader = follow_history(path, finished)
        judged = judge_stream(header, reader, timeout, grade=spec, live=True, progress=progress)
        conn.send(("result", judged.summary()))
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def no_race_hint(target: str, describe: dict[str, Any]) -> str:
    """What to try when no round really raced, for this kind of target."""
    if describe.get("controlled") is False and describe.get("untraceable"):
        return (
            "its methods are not Python code mmrace can trace (a C or Rust extension?), so they "
            "ran on free OS threads, which rarely switch inside a short call: mark its windows "
            "with mm.yield_point (seeded noise runs there), or race a Python build of it"
        )
    if describe.get("controlled") is False:
        return (
            "its calls ran uncontrolled, and threads rarely switch inside a short call: run it "
            "under the controlled scheduler (--scheduler random, pct or exhaustive: the default "
            "for Python plug-ins), or mark its windows with mm.yield_point"
        )
    if target == "model-threads":
        return "threads rarely switch inside a call: try --target model, or more tasks or rounds"
    if target in ("kernel", "agent"):
        return "try more tasks or rounds: with the GIL two calls rarely start at once"
    return "try more rounds or tasks, or a controlled scheduler"


def uncontrolled_warning(describe: dict[str, Any]) -> str | None:
    """The warning of a plug-in run whose interleavings the scheduler did not control."""
    if describe.get("controlled") is not False:
        return None
    return (
        f"interleavings were not controlled: the plug-in ran as {describe.get('flavour')}; "
        "no schedule was chosen or recorded, so an OK says little about its races"
    )


def low_overlap_warning(tasks: int, rounds: int, contested: int) -> str | None:
    """The warning when few rounds were contested (None when enough were, or one task)."""
    if tasks < 2 or not rounds or contested / rounds >= LOW_OVERLAP:
        return None
    return (
        f"only {contested} of {counted(rounds, 'round')} really raced (a winning call overlapped a "
        "competing one): the calls rarely overlapped, so the run says little about the race "
        "(try more rounds, another target or scheduler)"
    )


def build_summary(
    config: RunConfig,
    stats: RunStats,
    judgement: grading.Judgement,
    *,
    grader: grading.Grader | None,
    race: grading.RaceStats | None,
    live: Live,
    phases: dict[str, float],
    target_name: str,
    describe: dict[str, Any],
    clock: str,
    replayable: bool,
    first_failure: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the run found, as one JSON-able dict (schema: docs/harness.md)."""
    out = config.out
    check = judgement.check
    warnings = []
    low = low_overlap_warning(config.tasks, stats.rounds, stats.overlapped_rounds)
    if low is not None and not (stats.racing_rounds and not stats.overlapped_rounds):
        # (none at all: the verdict says so)
        warnings.append(low)
    uncontrolled = uncontrolled_warning(describe)
    if uncontrolled is not None:
        warnings.append(uncontrolled)
    exploration = stats.exploration
    if exploration is not None and first_failure is not None:
        exploration = {**exploration, "first_failure": first_failure}
    replay_cmd = f"mmrace replay {shlex.quote(str(out))}" if replayable else None
    rerun_cmd = None if replayable else rerun_command(config)
    return {
        "mmrace_summary": SUMMARY_VERSION,
        "verdict": judgement.verdict.value,
        "exit_code": judgement.exit_code,
        "reasons": list(judgement.reasons),
        "warnings": warnings,
        "target": target_name,
        "target_info": describe,
        "clock": clock,
        "workload": config.workload.name,
        "workload_ref": config.workload_ref,
        "seed": config.target.seed,
        "tasks": config.tasks,
        "rounds": stats.rounds,
        "rounds_requested": config.rounds,
        "time_budget": config.time_budget,
        "interrupted": stats.interrupted,
        "operations": stats.operations,
        "race_operations": stats.race_operations,
        "seconds": round(stats.seconds, 4),
        "throughput": round(stats.throughput, 1),
        "phase_seconds": {name: round(v, 4) for name, v in phases.items()},
        "double_wins": live.double_wins,
        "first_double_win": live.first_double_win,
        "overlap": {
            "rounds": stats.overlapped_rounds,
            "ratio": round(stats.overlap_ratio, 4),
            "definition": OVERLAP_DEFINITION,
            "full_rounds": stats.full_overlap_rounds,
            "full_ratio": round(stats.full_overlap_ratio, 4),
            "full_definition": FULL_OVERLAP_DEFINITION,
            "warning": low,
        },
        "problems": stats.problems,
        "problem_count": stats.problem_count,
        "check": {
            "verdict": check.verdict.value,
            "reason": check.reason,
            "seconds": check.seconds,
            "operations": check.operations,
            "partitions": check.partitions,
            "counterexample": check.counterexample,
            "counterexample_events": check.details,
        },
        "grading": grader.to_json() if grader else {},
        "race": race.to_json() if race else None,
        "replay": replay_cmd,
        "rerun": rerun_cmd,
        "host": host_facts(),
        "exploration": exploration,
        "files": {
            "history": HISTORY_FILE,
            "schedule": SCHEDULE_FILE if clock == "steps" else None,
            "run": RUN_FILE,
            "summary": SUMMARY_FILE,
        },
        "run_dir": str(out),
    }


def rerun_command(config: RunConfig) -> str:
    """A copy-paste `mmrace run ...` with this run's settings, for runs that cannot be replayed
    (real clocks: the same seed gives the same plans, not the same interleavings)."""
    opts = config.target
    argv = ["mmrace", "run", config.workload_ref, "--target", opts.spec]
    argv += ["--tasks", str(config.tasks)]
    if config.rounds is not None:
        argv += ["--rounds", str(config.rounds)]
    elif config.time_budget is not None:
        argv += ["--time-budget", f"{config.time_budget:g}"]
    argv += ["--seed", str(opts.seed)]
    if opts.spec.startswith("model") or is_plugin(opts.spec):
        if opts.scheduler != "random":
            argv += ["--scheduler", opts.scheduler]
        if opts.variant:
            argv += ["--variant", opts.variant]
    if opts.wrapper:
        argv += ["--wrapper", shlex.join(opts.wrapper)]
    return shlex.join(argv)


def host_facts() -> dict[str, Any]:
    """The machine the run ran on, for the top of the report: kernel release, page size,
    vm.mmap_min_addr (and the LSM minimum), whether this process holds CAP_SYS_RAWIO."""
    import platform

    import mm.kernel

    params = mm.kernel.host_params()
    return {
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "page_size": params.page_size,
        "mmap_min_addr": params.dac_mmap_min_addr,
        "lsm_mmap_min_addr": params.lsm_mmap_min_addr,
        "privileged": params.privileged,
    }


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    """DIR/summary.json, replaced at once: a reader (or a kill) never sees half of it."""
    path = out / SUMMARY_FILE
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def mark_interrupted(out: Path, summary: dict[str, Any], what: str) -> dict[str, Any]:
    """The judged run's summary once a later phase (the report) was interrupted: the run is
    incomplete, so an OK becomes UNKNOWN (a VIOLATION stays); DIR/summary.json is rewritten."""
    reason = f"run incomplete: {what}"
    summary = {**summary, "interrupted": summary.get("interrupted") or what}
    summary["reasons"] = [*summary.get("reasons", []), reason]
    if summary["verdict"] == Verdict.OK.value:
        summary["verdict"] = Verdict.UNKNOWN.value
        summary["exit_code"] = Verdict.UNKNOWN.exit_code
    write_summary(out, summary)
    return summary


def write_reports(out: Path, *, html: bool, junit: Path | None) -> list[str]:
    """DIR/report.html and the JUnit file from the judged run; lines saying what was written."""
    lines = []
    view = report.load_run(out)
    if html:
        lines.append(f"report     {report.write_report(out, view=view)}")
    if junit is not None:
        lines.append(f"junit      {report.write_junit(view, junit)}")
    return lines


# --- checking a history ----------------------------------------------------------------------


def summarize_check(
    header: Header, ops: Sequence[Operation], timeout: float
) -> grading.CheckSummary:
    """Check the history; a violation's counterexample is minimized by the engine's sound steps
    (within the same time budget) and put in words, as `mmrace check` does."""
    try:
        params = checker.params_of(header)
        result = checker.check_history(header, ops, timeout)
        return check_summary(_finished(header, params, result, timeout, True))
    except UsageError:
        raise
    except Exception as exc:
        return checker_failed(exc)


def checker_failed(exc: Exception) -> grading.CheckSummary:
    """A broken checker must not pass a run: UNKNOWN, with the reason."""
    reason = f"checker failed: {type(exc).__name__}: {exc}"
    return grading.CheckSummary(Verdict.UNKNOWN, reason, 0, 0, 0)


def check_summary(checked: CheckedFile) -> grading.CheckSummary:
    """A checked history's answer in plain values, a counterexample in words and as JSON."""
    result = checked.result
    text = details = None
    cx = result.counterexample
    if cx is not None and result.verdict is Verdict.VIOLATION:
        clock = "steps" if checked.header.extra.get("clock") == "steps" else "ns"
        lines = checker.counterexample_lines(checked.model, cx, checked.original, clock=clock)
        text = "\n".join(lines).strip("\n")
        details = counterexample_json(cx, checked.original)
    return grading.CheckSummary(
        result.verdict,
        result.reason,
        round(result.seconds, 3),
        result.operations,
        result.partitions,
        text,
        details,
    )


def counterexample_json(cx: checker.Counterexample, minimized_from: int | None) -> dict[str, Any]:
    """The counterexample as indices into its events, with the events themselves."""
    events = [
        {"task": e.task, "call": e.call, "ret": e.ret, "result": e.output, "op": str(e.input)}
        for e in cx.events
    ]
    return {
        "events": events,
        "linearized": list(cx.linearized),
        "stuck": [{"event": i, "why": why} for i, why in cx.stuck],
        "minimized_from": minimized_from,
    }


@attrs.frozen
class CheckedFile:
    """`mmrace check`'s answer: the result (counterexample minimized unless asked not to)."""

    header: Header
    model: checker.MmModel
    result: checker.CheckResult
    original: int | None  # the counterexample's size before minimizing

    @property
    def verdict(self) -> Verdict:
        return self.result.verdict


def incomplete_history(trailer: dict[str, Any] | None) -> str | None:
    """Why a history is not the whole run (no trailer: killed, or still being written; or
    an interrupted run), or None; such a history is judged UNKNOWN at best, never OK."""
    if trailer is None:
        return "the history has no trailer (the run was killed or is still being written)"
    if trailer.get("interrupted"):
        return f"the run was incomplete: {trailer['interrupted']}"
    return None


def ok_only_if_complete(
    result: checker.CheckResult, trailer: dict[str, Any] | None
) -> checker.CheckResult:
    """An OK of a history that is not the whole run (`incomplete_history`) becomes UNKNOWN."""
    incomplete = incomplete_history(trailer)
    if incomplete is None or result.verdict is not Verdict.OK:
        return result
    return attrs.evolve(result, verdict=Verdict.UNKNOWN, reason=f"{incomplete}; {result.reason}")


def check_file(path: Path | str, timeout: float | None, *, minimize: bool = True) -> CheckedFile:
    """Judge any history file as a stream, in memory bounded by its largest segment (malformed
    input is a UsageError naming the line; a truncated file is judged up to its last complete
    segment, UNKNOWN for the rest). A file whose lines are too far out of call order to be cut
    as a stream is checked whole."""
    header, reader = read_history(path)
    reader.allow_torn = True
    if checker.fast_scan_enabled():
        try:
            fast = _check_file_fast(header, Path(path), timeout, minimize)
        except checker.OutOfOrder:
            fast = None
            reader.handle.close()
            return check_whole_file(path, timeout, minimize=minimize)
        if fast is not None:
            reader.handle.close()
            return fast
    try:
        checked = judge_stream(header, reader, timeout, minimize=minimize).checked
    except checker.OutOfOrder:
        checked = None
    if checked is not None:
        return attrs.evolve(checked, result=ok_only_if_complete(checked.result, reader.trailer))
    reader.handle.close()
    return check_whole_file(path, timeout, minimize=minimize)


BIG_FILE = 64 << 20  # a file this large read by Python: say why the fast scan did not


def _check_file_fast(
    header: Header, path: Path, timeout: float | None, minimize: bool
) -> CheckedFile | None:
    """`check_file` through the checker's fast scan (`checker.scan_file`); None when the scan
    cannot read this file (then the Python reader reads it all, and says so on stderr for a
    big file)."""
    try:
        params = checker.params_of(header)
    except UsageError as exc:
        raise UsageError(f"{path}:1: {exc}") from None
    stream = checker.StreamCheck(params, timeout=timeout)
    try:
        scanned = checker.scan_file(path, stream)
    except (checker.ScanUnsure, NativeUnavailable) as exc:
        with contextlib.suppress(OSError):
            if path.stat().st_size >= BIG_FILE:
                print(f"mmrace: reading {path} with the Python reader: {exc}", file=sys.stderr)
        return None
    trailer = None
    if scanned.trailer is not None:
        trailer = loads(scanned.trailer, f"{path}: trailer")["end"]
    result = stream.result(truncation(None, trailer))
    checked = _finished(header, params, result, timeout, minimize)
    return attrs.evolve(checked, result=ok_only_if_complete(checked.result, trailer))


def check_whole_file(
    path: Path | str, timeout: float | None, *, minimize: bool = True
) -> CheckedFile:
    """Judge a history file read whole into memory (lines in any order)."""
    header, reader = read_history(path)
    try:
        params = checker.params_of(header)
    except UsageError as exc:
        raise UsageError(f"{path}:1: {exc}") from None
    events, rounds = checker.to_events(reader)
    result = checker.check_events(params, events, rounds, timeout=timeout)
    result = ok_only_if_complete(result, reader.trailer)
    return _finished(header, params, result, timeout, minimize)


def _finished(
    header: Header,
    params: mm.Params,
    result: checker.CheckResult,
    timeout: float | None,
    minimize: bool,
) -> CheckedFile:
    model = checker.MmModel(params)
    original = None
    if result.counterexample is not None and minimize and result.verdict is Verdict.VIOLATION:
        original = len(result.counterexample.events)
        result = checker.minimized(model, result, timeout)
    return CheckedFile(header, model, result, original)


# --- judging a history as a stream -----------------------------------------------------------

POINT_EVERY = 4096  # a file without round records: look for cuts every this many calls
ROUND_CAP = 200_000  # calls of one round kept for grading (a harness round is far smaller)


@attrs.frozen
class GradeSpec:
    """What grading a run's rounds needs besides the history (its header has the rest)."""

    workload: workloads.Workload
    tasks: int
    seed: int
    space: workloads.Space | None  # None: the arena of the header, as the runner chose it


@attrs.define(eq=False)
class StreamJudged:
    """A history judged as a stream: the check (as `check_file` gives it), the grades when
    asked for, and how the stream went."""

    checked: CheckedFile
    stream: checker.StreamCheck
    grading: grading.RoundGrading | None
    rounds: int  # round records read
    truncated: str | None
    grade_seconds: float

    def summary(self) -> JudgedRun:
        g = self.grading
        return JudgedRun(
            check_summary(self.checked),
            g.grader if g else None,
            g.stats if g else None,
            self.grade_seconds,
            self.to_json(),
        )

    def to_json(self) -> dict[str, Any]:
        s = self.stream
        return {
            "segments": s.segments,
            "largest_segment": s.largest,
            "batches": s.batches,
            "rounds_read": self.rounds,
            "truncated": self.truncated,
        }


def truncation(torn: str | None, trailer: dict[str, Any] | None) -> str | None:
    """Why a history read to its end is incomplete (None: it is not): a cut-short last line
    (``torn`` says where), or no trailer (a history without one is never judged OK: the run may
    have been killed mid-write; a tool that writes histories closes them with the trailer)."""
    if torn is not None:
        return f"{torn}, no trailer: the run was killed or its disk filled up"
    if trailer is None:
        return "no trailer: the run was killed, its disk filled up, or it is still being written"
    return None


def judge_stream(
    header: Header,
    reader: Any,
    timeout: float | None,
    *,
    minimize: bool = True,
    grade: GradeSpec | None = None,
    live: bool = False,
    progress: Callable[[checker.StreamCheck, int], None] | None = None,
) -> StreamJudged:
    """Check (and with ``grade``, grade) a history as it is read: round by round, complete
    segments checked as they end and dropped (`checker.StreamCheck`), so memory stays bounded
    by the largest segment. ``progress(stream, round)`` after each round record."""
    try:
        params = checker.params_of(header)
    except UsageError as exc:
        raise UsageError(f"{reader.path}:1: {exc}") from None
    # live: one process beside the race (a pool of checkers would take the race's cores)
    stream = checker.StreamCheck(params, timeout=timeout, live=live, workers=1 if live else None)
    rounds_grading = None
    if grade is not None:
        space = grade.space
        if space is None:
            arena = header.arena or {}
            space = workloads.Space.from_params(
                params, **{k: arena[k] for k in ("base", "size") if k in arena}
            )
        rounds_grading = grading.RoundGrading(
            grade.workload, grade.tasks, grade.seed, params, space
        )
    current: list[tuple[Any, ...]] = []
    current_round = -1
    read = 0
    grade_seconds = 0.0

    def on_round(index: int, record: dict[str, Any]) -> None:
        nonlocal current, read, grade_seconds
        read += 1
        if rounds_grading is not None:
            started = time.perf_counter()
            ops = [Operation(*f) for f in current] if current_round == index else []
            rounds_grading.add(index, ops, record)
            grade_seconds += time.perf_counter() - started
        current = []
        stream.point()
        if progress is not None:
            progress(stream, index)

    reader.on_round = on_round
    reader.keep_rounds = False  # handed to on_round as they come: keeping them would grow
    event = checker.Event
    add = stream.add
    n = 0
    enabled = gc.isenabled()
    gc.disable()  # many small acyclic objects: spare the cyclic GC's rescans
    try:
        for fields in reader.records():
            task, op, result, call, ret, rnd = fields
            add(event(task, op, result, call, ret), rnd)
            if rounds_grading is not None:
                if rnd != current_round:
                    current, current_round = [], rnd
                if len(current) < ROUND_CAP:
                    current.append(fields)
            n += 1
            if not read and not n % POINT_EVERY:
                stream.point()
                gc.collect(0)
    finally:
        if enabled:
            gc.enable()
    truncated = truncation(reader.torn, reader.trailer)
    stream.finish(complete=truncated is None)
    if progress is not None:  # what the last segments found, too
        progress(stream, stream.last_round)
    result = stream.result(truncated)
    checked = _finished(header, params, result, timeout, minimize)
    return StreamJudged(checked, stream, rounds_grading, read, truncated, grade_seconds)


# --- replay ----------------------------------------------------------------------------------


@attrs.frozen
class Replayed:
    """What a replay found: the replay's summary and where its history first differs."""

    summary: dict[str, Any]
    original: list[Operation]
    replayed: list[Operation]
    first_difference: int | None
    diverged: str | None = None  # the schedule no longer fits the run

    @property
    def identical(self) -> bool:
        return self.diverged is None and self.first_difference is None


def read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    return loads(text, str(path))


def read_schedule(path: Path) -> dict[int, list[int]]:
    """DIR/schedule.jsonl: one line per round, {"round": r, "choices": [task, ...]}."""
    return read_schedule_plans(path)[0]


def read_schedule_plans(path: Path) -> tuple[dict[int, list[int]], dict[int, int]]:
    """DIR/schedule.jsonl with the plan rounds an exhaustive run records ("plan": w)."""
    rounds: dict[int, list[int]] = {}
    plans: dict[int, int] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = loads(line, f"{path}:{n}")
            rounds[int(d["round"])] = [int(c) for c in d["choices"]]
            if "plan" in d:
                plans[int(d["round"])] = int(d["plan"])
        except (UsageError, ValueError, KeyError, TypeError):
            if n == len(lines):  # a killed run may leave a torn last line
                break
            raise UsageError(f"{path}:{n}: not a schedule line") from None
    return rounds, plans


def first_difference(a: Sequence[Any], b: Sequence[Any]) -> int | None:
    """Index of the first differing operation (or of the shorter end), None if identical."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def replay_config(
    src: Path, out: Path | None
) -> tuple[RunConfig, dict[int, list[int]], dict[int, int]]:
    """The configuration of a replayable run directory, to be re-run into ``out``."""
    if not (src / RUN_FILE).is_file():
        raise UsageError(f"{src}: not a run directory (no {RUN_FILE})")
    data = read_json(src / RUN_FILE)
    if not isinstance(data, dict):
        raise UsageError(f"{src / RUN_FILE}: damaged: not a JSON object")
    target = str(data.get("target"))
    controlled = data.get("scheduler") in ("random", "pct", "exhaustive")
    if not (target == "model" or is_plugin(target)) or not controlled:
        raise UsageError(
            f"{src}: {a(target)} run with scheduler {data.get('scheduler')} cannot be replayed "
            "(only the model target and plug-ins under the controlled scheduler record one)"
        )
    if not (src / SCHEDULE_FILE).is_file():
        raise UsageError(
            f"{src}: no {SCHEDULE_FILE}: the run recorded no schedule (a plug-in that ran on "
            "free OS threads, or a run from before plug-ins were controlled)"
        )
    schedule, plans = read_schedule_plans(src / SCHEDULE_FILE)
    if not schedule:
        raise UsageError(f"{src}: the schedule is empty (no round finished)")
    try:
        ref = (
            str(src / data["workload_file"]) if data.get("workload_file") else data["workload_ref"]
        )
        if not isinstance(ref, str):
            raise TypeError(f"workload_ref must be a string, not {ref!r}")
        options = options_from_run_json(data)
        space = workloads.Space(**data["space"]) if data.get("space") else None
        tasks = data["tasks"]
        if isinstance(tasks, bool) or not isinstance(tasks, int) or tasks < 1:
            raise TypeError(f"tasks must be a positive integer, not {tasks!r}")
    except KeyError as exc:
        raise UsageError(f"{src / RUN_FILE}: damaged: missing key {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise UsageError(f"{src / RUN_FILE}: damaged: {exc}") from None
    workload = load_workload(ref)
    out = out or (src / "replay")
    if out.resolve() == src.resolve():
        raise UsageError("--out: must differ from the run directory")
    rounds = max(schedule) + 1
    config = RunConfig(workload, ref, options, tasks, rounds, None, out, space)
    return config, schedule, plans


def schedule_truncated(src: Path, schedule: dict[int, list[int]]) -> str | None:
    """Why DIR/schedule.jsonl holds less than the run (a torn last line, fewer rounds than
    the run's summary counts), or None: the replay can then reproduce only a prefix."""
    path = src / SCHEDULE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if text and not text.endswith("\n"):
        kept = counted(len(schedule), "round")
        return f"{path}: truncated (its last line is cut off): {kept} recorded"
    try:
        summary = json.loads((src / SUMMARY_FILE).read_text(encoding="utf-8"))
        rounds = int(summary["rounds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if rounds > len(schedule) and summary.get("exploration") is None:
        return (
            f"{path}: truncated: it records {counted(len(schedule), 'round')}, the run had {rounds}"
        )
    return None


def replay(
    config: RunConfig,
    schedule: dict[int, list[int]],
    src: Path,
    *,
    check_timeout: float,
    progress: Progress | None = None,
    plans: dict[int, int] | None = None,
) -> Replayed:
    """Re-run ``src`` with its recorded decisions into ``config.out`` and compare histories
    (an exhaustive run's rounds are re-planned from their recorded plan rounds, ``plans``)."""
    if config.out.exists():
        shutil.rmtree(config.out)
    target = make_replay_target(config.target, schedule, plans or None)
    save_run_json(config)
    _, original = load_history(src / HISTORY_FILE)
    try:
        summary = perform(config, target, check_timeout=check_timeout, progress=progress)
    except ScheduleDiverged as exc:
        return Replayed({}, original, [], None, str(exc))
    _, replayed = load_history(config.out / HISTORY_FILE)
    return Replayed(summary, original, replayed, first_difference(original, replayed))


# --- judging round by round ------------------------------------------------------------------


class RoundJudge:
    """Judges each round on its own as it ends: its strict grade, then the checker on its calls
    (setup to cleanup: every round starts from the arena the previous cleanup emptied).

    ``judge(stats, log)`` returns what found a violation (None: nothing), and remembers the
    first round that showed one; rounds that could not be judged are counted.
    """

    BAD = (workloads.FORBIDDEN, grading.UNSPECIFIED)

    def __init__(
        self,
        workload: workloads.Workload,
        seed: int,
        params: mm.Params,
        space: workloads.Space,
        check_timeout: float,
    ) -> None:
        self.workload = workload
        self.seed = seed
        self.params = params
        self.space = space
        self.check_timeout = check_timeout
        self.unknown_rounds = 0
        self.found: str | None = None
        self.found_round: int | None = None

    def __call__(self, stats: RunStats, log: RoundLog) -> str | None:
        race: RaceOutcome = log.race
        planned = log.index if log.plan is None else log.plan
        plan = self.workload.plan(planned, stats.tasks, self.space, self.seed)
        result = grading.RoundResult.from_records(
            plan,
            race.records,
            round_index=log.index,
            problems=race.problems,
            after=log.cleanup,
            content=race.content,
        )
        params = self.params
        graded = grading.grade_round(
            self.workload, result, privileged=params.privileged, page_size=params.page_size
        )
        found = None
        calls = [*log.setup, *race.records, *log.cleanup]
        if graded.verdict == grading.UNKNOWN:
            self.unknown_rounds += 1
        elif graded.verdict in self.BAD:
            found = f"grading: {graded.description} ({graded.key})"
        elif all(c.ret is not None for c in calls):
            events = [checker.Event(c.task, c.op, c.result, c.call, c.ret) for c in calls]
            checked = checker.check_events(params, events, None, timeout=self.check_timeout)
            if checked.verdict is Verdict.VIOLATION:
                found = f"checker: {checked.reason}"
            elif checked.verdict is not Verdict.OK:
                self.unknown_rounds += 1
        if found is not None and self.found is None:
            self.found, self.found_round = found, log.index
        return found
