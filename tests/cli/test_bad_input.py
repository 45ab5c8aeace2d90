"""Bad input, command by command: exit 2 and exactly one stderr line naming the place and the
problem, never a traceback, never a verdict.

Each case is (argv, the files it needs, what the line must name). ``{tmp}`` in an argument or a
file's text is the test's directory, ``{run}`` a small judged run directory made once.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stress.cli import main
from stress.history import load_history

DIV = """name = "div"
summary = "a grade that may divide by zero"
[[race]]
kind = "mmap"
{race}
[[grades]]
verdict = "ACCEPTABLE"
when = "{when}"
description = "x"
"""
BAD_PLUGIN = """class T:
    def mmap(self, a, n, p, f):
        return {value}
    def munmap(self, a, n):
        return 0
    def mprotect(self, a, n, p):
        return 0
def make():
    return T()
"""


def workload(when: str = "winners >= 0", race: str = "") -> str:
    return DIV.format(when=when, race=race)


def history(run: Path, **params: object) -> str:
    """The small run's history with its header's params changed."""
    lines = (run / "history.jsonl").read_text().splitlines()
    header = json.loads(lines[0])
    header["params"].update(params)
    return "\n".join([json.dumps(header), *lines[1:]]) + "\n"


LONG = workload(" + ".join(["winners"] * 20_000))
DEEP_EXPR = workload("(" * 300 + "winners" + ")" * 300)
NESTED_TOML = "a = " + "[" * 5000 + "]" * 5000
SCRIPT = {"s": "munmap B P\n"}
RUN_JSON = {
    "r/run.json": '{"target": "model", "scheduler": "random"}',
    "r/schedule.jsonl": '{"round":0,"choices":[0]}\n',
}

# (id, argv split on spaces, files, what the line names)
CASES: list[tuple[str, str, dict[str, str], str]] = [
    # --- where the output goes
    ("out-proc", "run --out /proc/x/run", {}, "--out /proc/x/run: cannot write"),
    ("out-file", "run --out {tmp}/afile/sub", {"afile": ""}, "afile/sub: cannot write"),
    ("junit", "run --junit /proc/x.xml", {}, "--junit /proc/x.xml: cannot write"),
    ("report-out", "report {run} --out /proc/x.html", {}, "--out /proc/x.html"),
    ("report-junit", "report {run} --junit /proc/x.xml", {}, "--junit /proc/x.xml"),
    ("sweep-out", "sweep same-page --out {tmp}/afile", {"afile": ""}, "not a dir"),
    # --- workloads
    ("div", "run {tmp}/w.toml", {"w.toml": workload("winners // eexist > 0")}, "grades[0]"),
    ("mod", "list {tmp}/w.toml", {"w.toml": workload("winners % (eexist - 1) > 0")}, "zero"),
    ("long", "list {tmp}/w.toml", {"w.toml": LONG}, "too long"),
    ("deep", "list {tmp}/w.toml", {"w.toml": DEEP_EXPR}, "grades[0].when"),
    ("min", "list {tmp}/w.toml", {"w.toml": workload("min() > 0")}, "grades[0].when"),
    ("binary", "list {tmp}/w.toml", {"w.toml": "\x00\udcff"}, "w.toml: not a TOML file"),
    ("nested", "list {tmp}/w.toml", {"w.toml": NESTED_TOML}, "nested too deeply"),
    ("prot", "list {tmp}/w.toml", {"w.toml": workload(race="prot = 1" + "0" * 20)}, "race[0].prot"),
    ("offset-2^64", "list {tmp}/w.toml", {"w.toml": workload(race=f'offset = "{10**20}"')},
     "race[0].offset': 100000000000000000000 pages is beyond"),
    ("no-race", "run {tmp}/w.toml --tasks 2", {"w.toml": workload(race='tasks = "task > 9"')},
     "choose no call at 2 tasks"),
    # --- options that do not apply
    ("depth", "run --depth 4", {}, "--depth: only with --scheduler pct"),
    ("variant", "run --variant check-then-act --target kernel", {}, "--variant"),
    ("inf", "run --time-budget inf", {}, "--time-budget: must be a finite number"),
    ("exec-twice", "exec {tmp}/s --target model --target model", SCRIPT, "model: given 2 times"),
    ("sweep-tasks", "sweep same-page --tasks 1,²", {}, "--tasks: '²'"),
    ("sweep-many", "sweep same-page --tasks 5000", {}, "--tasks: at most 4096"),
    ("check-inf", "check {run}/history.jsonl --timeout inf", {}, "--timeout inf"),
    ("sweep-target", "sweep same-page --target warp", {}, "--target: unknown target 'warp'"),
    # --- machine parameters, one rule everywhere
    ("page-0", "check {tmp}/h.jsonl", {"h.jsonl": "PAGE0"}, "h.jsonl:1: history header: params"),
    ("page-3", "check {tmp}/h.jsonl", {"h.jsonl": "PAGE3"}, "page_size: must be a power of two"),
    ("maybe", "check {tmp}/h.jsonl", {"h.jsonl": "MAYBE"}, "privileged: must be true or false"),
    ("param-page", "exec {tmp}/s --model-param page_size=0", SCRIPT, "page_size=0: page_size"),
    ("param-maybe", "exec {tmp}/s --model-param privileged=maybe", SCRIPT, "privileged=maybe"),
    # --- files
    ("unreadable", "check /proc/self/mem", {}, "/proc/self/mem: cannot read"),
    ("json-deep", "check {tmp}/h.jsonl", {"h.jsonl": "DEEP"}, "h.jsonl:2: bad JSON: nested too"),
    ("exec-2^64", "exec {tmp}/s", {"s": "mmap 0x10000000000000000 P READ NR\n"}, "s:1: number"),
    ("run-json", "replay {tmp}/r", RUN_JSON, "r/run.json: damaged: missing key"),
    ("run-json-list", "replay {tmp}/r", {"r/run.json": "[1]"}, "r/run.json: damaged: not a JSON"),
]  # fmt: skip


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("small") / "run"
    argv = ["run", "--out", str(out), "--rounds", "3", "--tasks", "2", "--no-progress"]
    assert main([*argv, "--no-report", "--seed", "1"]) == 0
    return out


def _text(value: str, run: Path) -> str:
    if value in ("PAGE0", "PAGE3", "MAYBE"):
        key, v = {"PAGE0": ("page_size", 0), "PAGE3": ("page_size", 12288)}.get(
            value, ("privileged", "maybe")
        )
        return history(run, **{key: v})
    if value == "DEEP":
        lines = history(run).splitlines()
        return "\n".join([lines[0], "[" * 100_000 + "]" * 100_000, *lines[1:]]) + "\n"
    return value


@pytest.mark.parametrize(
    ("argv", "files", "names"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    small_run: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: str,
    files: dict[str, str],
    names: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # default run directories go here
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        content = _text(text, small_run).replace("{tmp}", str(tmp_path))
        path.write_bytes(content.encode("utf-8", "surrogateescape"))
    args = [
        a.replace("{tmp}", str(tmp_path)).replace("{run}", str(small_run)) for a in argv.split()
    ]
    if "--no-progress" not in args and args[0] in ("run", "sweep"):
        args.append("--no-progress" if args[0] == "run" else "--no-reports")
    code = main(args)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert "Traceback" not in captured.err
    error = [line for line in lines if ": error: " in line]
    assert len(error) == 1 and error[0] == lines[-1], lines
    assert error[0].startswith(f"mmrace {args[0]}: error: ")
    assert names.replace("{tmp}", str(tmp_path)) in error[0], error[0]
    assert len(error[0]) < 400  # one readable line, not a quoted file


def test_bad_environment_variable_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MMRACE_AGENT_TIMEOUT", "abc")
    argv = ["run", "--target", "agent", "--rounds", "1", "--out", str(tmp_path / "a")]
    assert main([*argv, "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        "mmrace run: error: MMRACE_AGENT_TIMEOUT=abc: not a number of seconds"
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [("None", "returned None, not an int"), ("'ok'", "returned 'ok', not an int"),
     ("2**70", f"returned {2**70}, out of range"), ("-5000", "returned -5000, out of range")],
)  # fmt: skip
@pytest.mark.parametrize("scheduler", ["random", "free"])
def test_a_plugin_answer_that_is_no_result_is_its_mistake(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    problem: str,
    scheduler: str,
) -> None:
    name = f"badresult_{abs(hash((value, scheduler)))}"
    (tmp_path / f"{name}.py").write_text(BAD_PLUGIN.format(value=value))
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "run"
    argv = ["run", "--target", f"{name}:make", "--scheduler", scheduler, "--rounds", "2"]
    assert main([*argv, "--tasks", "2", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"mmrace run: error: --target {name}:make: mmap {problem}")
    assert "(in task " in err[-1] and "Traceback" not in "\n".join(err)
    # nothing of the bad answer reached the history, which still reads
    _, ops = load_history(out / "history.jsonl")
    assert all(op.ret is None or op.result is not None for op in ops)


def test_replay_reports_a_truncated_schedule(
    small_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    text = (run / "schedule.jsonl").read_text()
    (run / "schedule.jsonl").write_text(text[:-5])  # a torn last line
    assert main(["replay", str(run), "--no-progress"]) == 3
    captured = capsys.readouterr()
    assert "schedule.jsonl: truncated (its last line is cut off): 2 rounds recorded" in captured.err
    assert "not replayable" in captured.out
