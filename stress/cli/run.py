"""`mmrace run`: race tasks for the same addresses, record the history, check it, report.

Writes DIR/report.html too (`stress.report.write_report`; `--no-report` skips it) and, with
`--junit FILE`, JUnit XML. Exit status: 0 no violation, 1 violation, 2 bad usage, 3 could not
judge (checker timeout, harness problems, interrupted run).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from stress.cli._agent import add_agent_arguments, agent_options

if TYPE_CHECKING:
    import mm

HELP = "race tasks for the same addresses, record, check and report"
DEFAULT_TASKS = 16
DEFAULT_ROUNDS = 300
DEFAULT_CHECK_TIMEOUT = 60.0
SCHEDULERS = ("random", "pct", "trio", "exhaustive", "free")
MODEL_SCHEDULERS = ("random", "pct", "trio", "exhaustive")
PLUGIN_SCHEDULERS = ("random", "pct", "exhaustive", "free")
DEFAULT_PREEMPTIONS = 2
DEFAULT_DEPTH = 3
MODEL_TARGETS = ("model", "model-threads")
DEFAULT_MAX_SCHEDULES = 10_000
MAX_TASKS = 4096
REAL_TARGETS = ("kernel", "agent")
ISOLATED_ENV = "MMRACE_ISOLATED"
KIND_NAMES = {int: "an integer", float: "a number"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "workload",
        nargs="?",
        default=None,
        help="catalog name (see `mmrace list`) or path to a .toml file (default: same-page)",
    )
    parser.add_argument(
        "--target",
        default="model",
        help="model (default), model-threads, kernel, agent, or package.module:factory",
    )
    parser.add_argument("--tasks", type=str, default=str(DEFAULT_TASKS), help="racing tasks")
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--rounds", type=str, default=None, help=f"rounds (default {DEFAULT_ROUNDS})")
    stop.add_argument("--time-budget", type=str, default=None, help="seconds to keep racing")
    parser.add_argument("--seed", type=str, default=None, help="seed (default: random, printed)")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: fresh)")
    parser.add_argument(
        "--scheduler",
        default="random",
        help="model and plug-ins: random (default), pct or exhaustive (controlled, replayable); "
        "model: trio (fast, not replayable); plug-ins: free (OS threads, not controlled)",
    )
    parser.add_argument(
        "--depth", type=str, default=None, help="--scheduler pct: bug depth d (default 3)"
    )
    parser.add_argument(
        "--preemptions",
        default=None,
        help=f"exhaustive: at most K preemptions per schedule (default {DEFAULT_PREEMPTIONS})",
    )
    parser.add_argument(
        "--max-schedules",
        default=None,
        help=f"exhaustive: schedules per round plan at most (default {DEFAULT_MAX_SCHEDULES:,})",
    )
    parser.add_argument(
        "--granularity",
        default=None,
        choices=("line", "opcode"),
        help="sync plug-ins: a preemption point at every line (default) or every bytecode",
    )
    parser.add_argument(
        "--call-timeout",
        default=None,
        help="plug-ins: seconds a call may go without reaching a preemption point (default 10)",
    )
    parser.add_argument(
        "--isolate",
        action="store_true",
        help="run in a child process, so that a target that kills the process is reported",
    )
    add_agent_arguments(parser)
    privilege = parser.add_mutually_exclusive_group()
    privilege.add_argument(
        "--privileged",
        dest="privileged",
        action="store_const",
        const=True,
        default=None,
        help="the model holds CAP_SYS_RAWIO (page 0 and low addresses allowed)",
    )
    privilege.add_argument(
        "--unprivileged",
        dest="privileged",
        action="store_const",
        const=False,
        help="the model lacks CAP_SYS_RAWIO (default: as this process)",
    )
    parser.add_argument("--variant", default=None, help="a bug variant of the model core")
    parser.add_argument("--no-noise", action="store_true", help="model-threads: no yield noise")
    parser.add_argument(
        "--check-timeout",
        type=str,
        default=str(DEFAULT_CHECK_TIMEOUT),
        help=f"seconds for the linearizability check (default {DEFAULT_CHECK_TIMEOUT:g})",
    )
    parser.add_argument(
        "--stop-on-violation",
        action="store_true",
        help="end the run at the first violation the live judge confirms (default: full budget)",
    )
    parser.add_argument(
        "--no-live-judge",
        action="store_true",
        help="judge the history after the race instead of while it races",
    )
    parser.add_argument("--json", action="store_true", help="print summary.json instead of text")
    parser.add_argument("--no-progress", action="store_true", help="no live progress")
    parser.add_argument("--no-report", action="store_true", help="do not write DIR/report.html")
    parser.add_argument("--junit", type=Path, default=None, metavar="FILE", help="JUnit XML")


def _number(flag: str, text: str | None, kind: type, minimum: float) -> float | int | None:
    from stress.errors import UsageError

    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not {KIND_NAMES[kind]}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise UsageError(f"{flag}: must be a finite number, got {text}")
    if value < minimum:
        raise UsageError(f"{flag}: must be at least {minimum:g}, got {text}")
    return value


def default_out(workload: str, target: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{workload}-{target}")
    base = Path("mmrace-runs") / f"{stamp}-{safe}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def run(args: argparse.Namespace) -> int:
    from stress.cli._paths import check_out_file, make_out_dir
    from stress.cli._progress import make_progress
    from stress.driver import load_workload, perform, save_run_json
    from stress.errors import UsageError, counted
    from stress.harness import RunConfig, TargetOptions, is_plugin, make_target
    from stress.report import format_summary

    tasks = int(_number("--tasks", args.tasks, int, 1) or 0)
    if tasks > MAX_TASKS:
        raise UsageError(f"--tasks: at most {MAX_TASKS}, got {tasks}")
    rounds = _number("--rounds", args.rounds, int, 1)
    budget = _number("--time-budget", args.time_budget, float, 0.001)
    check_timeout = float(_number("--check-timeout", args.check_timeout, float, 0.001) or 0)
    depth = int(_number("--depth", args.depth, int, 1) or DEFAULT_DEPTH)
    seed = _number("--seed", args.seed, int, 0)
    if args.scheduler not in SCHEDULERS:
        raise UsageError(
            f"--scheduler: unknown scheduler {args.scheduler!r} "
            f"(choose from {', '.join(SCHEDULERS)})"
        )
    plugin = is_plugin(args.target)
    if args.scheduler != "random":
        allowed = (
            PLUGIN_SCHEDULERS if plugin else MODEL_SCHEDULERS if args.target == "model" else ()
        )
        if not allowed:
            raise UsageError(
                "--scheduler: only the model target and plug-ins have a controlled scheduler"
            )
        if args.scheduler not in allowed:
            what = "a plug-in" if plugin else "the model target"
            raise UsageError(
                f"--scheduler {args.scheduler}: not for {what} (choose from {', '.join(allowed)})"
            )
    exhaustive = args.scheduler == "exhaustive"
    if args.depth is not None and args.scheduler != "pct":
        raise UsageError(
            f"--depth: only with --scheduler pct (the bug depth of PCT; this run's scheduler "
            f"is {args.scheduler})"
        )
    if args.variant is not None and args.target not in MODEL_TARGETS:
        raise UsageError(
            f"--variant: only the model targets ({', '.join(MODEL_TARGETS)}) have bug variants, "
            f"not --target {args.target}"
        )
    for flag, value in (
        ("--preemptions", args.preemptions),
        ("--max-schedules", args.max_schedules),
    ):
        if value is not None and not exhaustive:
            raise UsageError(f"{flag}: only with --scheduler exhaustive")
    preemptions = _number("--preemptions", args.preemptions, int, 0)
    max_schedules = _number("--max-schedules", args.max_schedules, int, 1)
    if args.granularity is not None and not plugin:
        raise UsageError("--granularity: only plug-ins are traced (line or opcode)")
    call_timeout = _number("--call-timeout", args.call_timeout, float, 0.001)
    if call_timeout is not None and not plugin:
        raise UsageError("--call-timeout: only plug-in calls have a deadline of their own")
    if rounds is None and budget is None:
        rounds = 1 if exhaustive else DEFAULT_ROUNDS
    agent = agent_options(args)
    wrapper, timeout, startup = agent["wrapper"], agent["timeout"], agent["startup_timeout"]
    if call_timeout is not None:
        timeout = call_timeout
    params = _params(args.target, args.privileged)
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 32)
    ref = args.workload or "same-page"
    workload = load_workload(ref)
    out = args.out or default_out(workload.name, args.target)
    if (out / "history.jsonl").exists():
        raise UsageError(f"--out {out}: already holds a run (choose another directory)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a directory")
    if args.isolate and not os.environ.get(ISOLATED_ENV):
        make_out_dir(out)
        return _isolated(args, out, int(seed))
    options = TargetOptions(
        spec=args.target,
        seed=int(seed),
        scheduler=args.scheduler,
        depth=depth,
        wrapper=wrapper,
        variant=args.variant,
        noise=not args.no_noise,
        params=params,
        timeout=None if timeout is None else float(timeout),
        startup_timeout=None if startup is None else float(startup),
        preemptions=int(DEFAULT_PREEMPTIONS if preemptions is None else preemptions),
        max_schedules=int(DEFAULT_MAX_SCHEDULES if max_schedules is None else max_schedules),
        granularity=args.granularity or "line",
        engine=agent["engine"],
        agent=agent["agent"],
    )
    try:
        target = make_target(options)
    except ValueError as exc:
        raise UsageError(f"--target {args.target}: {exc}") from None
    config = RunConfig(workload, ref, options, tasks, rounds, budget, out)  # type: ignore[arg-type]
    if args.junit is not None:
        check_out_file(args.junit, "--junit")
    make_out_dir(out)
    save_run_json(config)
    info = sys.stderr
    print(
        f"mmrace run: {workload.name} on {target.name}, {counted(tasks, 'task')}, "
        + (counted(int(rounds), "round") if rounds else f"{budget:g} s")
        + f", seed {seed} -> {out}",
        file=info,
        flush=True,
    )
    if not args.no_report and args.target not in REAL_TARGETS:
        # the plot workers import matplotlib on another core while the race runs (not beside a
        # kernel or agent race: a busy core beside it would change the interleavings it sees)
        from stress.report import warm_up

        warm_up()
    progress = make_progress(not args.no_progress, rounds, budget)  # type: ignore[arg-type]
    summary = perform(
        config,
        target,
        check_timeout=check_timeout,
        progress=progress,
        live_judge=not args.no_live_judge,
        stop_on_violation=args.stop_on_violation,
    )
    return report_phase(out, summary, args, format_summary, progress)


def report_phase(
    out: Path,
    summary: dict[str, Any],
    args: argparse.Namespace,
    text: Callable[..., str],
    progress: Any = None,
) -> int:
    """Print the summary, write the reports and return the run's exit code; Ctrl-C or SIGTERM
    meanwhile leaves the run incomplete (an OK becomes UNKNOWN, exit 3; summary.json says so)."""
    from stress.driver import mark_interrupted
    from stress.errors import counting_signals, interruption, signals_seen

    stream = sys.stderr if args.json else sys.stdout
    seen = signals_seen()
    with counting_signals():
        try:
            print(json.dumps(summary, indent=2) if args.json else text(summary))
            if progress is not None and not args.no_report:
                progress.phase("report", "drawing the plots (in parallel) and writing report.html")
            _write_report(out, not args.no_report, args.junit, stream)
            if progress is not None:
                progress.done()
            lost = signals_seen() > seen  # its KeyboardInterrupt swallowed in a __del__
        except KeyboardInterrupt:
            lost = True
    if lost:
        what = f"interrupted ({interruption()}) while writing the report"
        summary = mark_interrupted(out, summary, what)
        print(f"verdict    {summary['verdict']}: {what}", file=stream)
    return int(summary["exit_code"])


def _params(target: str, privileged: bool | None) -> mm.Params | None:
    """The machine a model mirrors: the reference machine, privileged as asked or as this
    process is. The kernel and agent targets run with this process's own privileges."""
    import mm
    import mm.kernel

    host = mm.kernel.has_cap_sys_rawio()
    if target in REAL_TARGETS:
        if privileged is not None and privileged != host:
            from stress.errors import UsageError

            flag, holds = ("--unprivileged", "holds") if host else ("--privileged", "lacks")
            raise UsageError(
                f"{flag}: the {target} target runs with this process's privileges and this "
                f"process {holds} CAP_SYS_RAWIO (start mmrace accordingly, e.g. under "
                "`setpriv --inh-caps=-sys_rawio --bounding-set=-sys_rawio`)"
            )
        return None
    return mm.Params.reference(privileged=host if privileged is None else privileged)


def _write_report(out: Path, html: bool, junit: Path | None, stream: TextIO) -> None:
    """DIR/report.html (and the JUnit file); a failure here never changes the verdict."""
    if not html and junit is None:
        return
    try:
        from stress.driver import write_reports

        for line in write_reports(out, html=html, junit=junit):
            print(line, file=stream)
    except Exception as exc:  # the run is judged and saved: say what is missing, keep going
        print(f"mmrace run: report not written: {type(exc).__name__}: {exc}", file=sys.stderr)


def _isolated(args: argparse.Namespace, out: Path, seed: int) -> int:
    """``--isolate``: the same run in a child process (``python -m stress run ...``), so that a
    target that ends the process (a C extension's exit() or abort(), a segfault, a kill) is
    reported instead of being taken for the run's own exit status. The child writes the run
    directory and prints as usual; when it dies without its summary, its partial history is
    checked here: VIOLATION if that already proves one, else UNKNOWN, saying how it died."""
    from stress.verdict import EXIT_CODES, Verdict

    argv = [a for a in getattr(args, "_argv", sys.argv[1:]) if a != "--isolate"]
    argv = [*_without(argv, ("--out", "--seed")), "--out", str(out), "--seed", str(seed)]
    # the child imports what this process can (a plug-in found through sys.path)
    path = os.pathsep.join(p for p in sys.path if p)
    env = {**os.environ, ISOLATED_ENV: "1", "PYTHONPATH": path}
    child = subprocess.Popen([sys.executable, "-m", "stress", *argv], env=env)
    while True:
        try:
            status = child.wait()
            break
        except KeyboardInterrupt:  # the child got the same Ctrl-C; a second one kills it
            from stress.errors import interruption

            if interruption() == "SIGTERM":  # sent to this process alone: pass it on
                child.send_signal(signal.SIGTERM)
            try:
                status = child.wait(timeout=30)
                break
            except (KeyboardInterrupt, subprocess.TimeoutExpired):
                child.kill()
    summary_path = out / "summary.json"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except ValueError:
            summary = {}
        if summary.get("exit_code") == status:
            return status
    if status < 0:
        try:
            how = f"was killed by signal {-status} ({signal.Signals(-status).name})"
        except ValueError:
            how = f"was killed by signal {-status}"
    else:
        how = f"exited with status {status}"
    verdict, detail = Verdict.UNKNOWN, ""
    history = out / "history.jsonl"
    if history.is_file():
        from stress.driver import check_file
        from stress.errors import UsageError

        try:
            checked = check_file(history, 60.0)
            if checked.verdict is Verdict.VIOLATION:
                verdict, detail = (
                    Verdict.VIOLATION,
                    f"; its history so far: {checked.result.reason}",
                )
        except (UsageError, OSError) as exc:
            detail = f"; its history could not be read: {exc}"
    print(
        f"verdict    {verdict.value}"
        + (" (could not judge)" if verdict is Verdict.UNKNOWN else "")
        + f"\n           - the run's process {how} before writing its verdict (did the target "
        f"end the process?){detail}\nrun dir    {out}"
    )
    return EXIT_CODES[verdict]


def _without(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """`argv` without the given options (``--flag value`` and ``--flag=value``)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in flags:
            skip = True
            continue
        if any(a.startswith(f + "=") for f in flags):
            continue
        out.append(a)
    return out
