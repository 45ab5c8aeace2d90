"""`mmrace exec`: scripts on the model, the kernel, both at once; divergences; bad scripts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mm
import mm.kernel
from stress.cli import exec as cmd_exec
from stress.cli import main
from stress.cli._script import load_script, parse_script, parse_value
from stress.errors import UsageError
from tests.helpers import B, P, needs_linux

PROBE = Path(cmd_exec.__file__).parent / "examples" / "probe.mmscript"
# line number -> expected result of the example tour (non-fixed lines excluded)
PROBE_EXPECT = {
    4: hex(B + P),
    5: "EEXIST",
    6: "EEXIST",
    7: hex(B),
    8: hex(B + 4 * P),
    9: hex(B + 2 * P),
    10: "0",
    11: "0",
    12: hex(B + P),
    14: "EINVAL",
    15: "0",
}


def results(out: str) -> dict[int, list[str]]:
    """line number -> the result cells of each printed operation line."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+\w+\(.*?\)\s+(.*)$", line)
        if m:
            found[int(m.group(1))] = m.group(2).split()
    return found


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "s.mmscript"
    path.write_text(text)
    return str(path)


def test_model_runs_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exec", str(PROBE)]) == 0
    got = results(capsys.readouterr().out)
    for line, want in PROBE_EXPECT.items():
        assert got[line] == [want], line
    assert int(got[13][0], 16) != B + P  # the hint was taken: placed elsewhere


@needs_linux
@pytest.mark.kernel
def test_kernel_runs_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exec", str(PROBE), "--target", "kernel"]) == 0
    got = results(capsys.readouterr().out)
    for line, want in PROBE_EXPECT.items():
        assert got[line] == [want], line


@needs_linux
@pytest.mark.kernel
def test_both_agree_on_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exec", str(PROBE), "--target", "model", "--target", "kernel"]) == 0
    out = capsys.readouterr().out
    got = results(out)
    for line, want in PROBE_EXPECT.items():
        assert got[line] == [f"model={want}", f"kernel={want}"], line
    assert "12 operations, 0 divergences" in out


ZERO = """\
mmap 0 P READ NR                      # EPERM unprivileged, 0 privileged
mmap 0x1000 P READ NR                 # dac_mmap_min_addr: allowed either way
munmap 0x1000 P
mmap 0x1000 P READ PRIVATE|ANONYMOUS  # hint raised to mmap_min_addr
munmap 0 2P
"""


@needs_linux
@pytest.mark.kernel
def test_unprivileged_kernel_agrees(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    had_cap = mm.kernel.has_cap_sys_rawio()
    argv = ["exec", write(tmp_path, ZERO), "--target", "model", "--target", "kernel"]
    assert main([*argv, "--unprivileged"]) == 0
    got = results(capsys.readouterr().out)
    assert got[1] == ["model=EPERM", "kernel=EPERM"]
    floor = hex(mm.kernel.host_params().mmap_min_addr)
    assert got[4] == [f"model={floor}", f"kernel={floor}"]
    assert mm.kernel.has_cap_sys_rawio() == had_cap  # only the worker thread dropped it


@needs_linux
@pytest.mark.kernel
def test_divergence_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A model with a higher LSM floor places the raised hint elsewhere than the kernel."""
    argv = ["exec", write(tmp_path, ZERO), "--target", "model", "--target", "kernel"]
    assert main([*argv, "--model-param", "lsm_mmap_min_addr=0x20000"]) == 1
    out = capsys.readouterr().out
    assert "model=0x20000" in out and "DIVERGES" in out
    assert "1 divergence" in out


class FakeKernel:
    """A kernel target that answers from a table, to test the divergence logic on its own."""

    name = "kernel"

    def __init__(self, answers: list[int], pages_differ_at: int = -1) -> None:
        self.answers = answers
        self.calls = 0
        self.pages_differ_at = pages_differ_at

    def apply(self, op: mm.Op) -> int:
        self.calls += 1
        return self.answers[self.calls - 1]

    def pages(self, state: mm.State) -> tuple[object, object]:
        return ("x", "y") if self.calls - 1 == self.pages_differ_at else ("same", "same")


def run_fake(text: str, fake: FakeKernel, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    script = parse_script(text)
    model = cmd_exec.ModelTarget(mm.Params.reference())
    code = cmd_exec._execute(script, model, fake)  # type: ignore[arg-type]
    return code, capsys.readouterr().out


def test_fake_agreeing_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_fake("mmap B P READ NR\nmmap B P READ NR\n", FakeKernel([B, -17]), capsys)
    assert code == 0 and "0 divergences" in out


def test_fake_wrong_result(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_fake("mmap B P READ NR\nmmap B P READ NR\n", FakeKernel([B, B]), capsys)
    assert code == 1
    assert results(out)[2][:3] == ["model=EEXIST", f"kernel={B:#x}", "DIVERGES:"]
    assert "results differ" in out


def test_fake_bad_placement(capsys: pytest.CaptureFixture[str]) -> None:
    """A non-fixed result on top of an existing mapping is no allowed placement."""
    text = "mmap B P READ NR\nmmap 0 P READ PRIVATE|ANONYMOUS\n"
    code, out = run_fake(text, FakeKernel([B, B]), capsys)
    assert code == 1 and "placement not allowed" in out
    code, out = run_fake(text, FakeKernel([B, B + 8 * P]), capsys)
    assert code == 0 and "both allowed placements" in out


def test_fake_pages_differ(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_fake("mmap B P READ NR\n", FakeKernel([B], pages_differ_at=0), capsys)
    assert code == 1 and "pages differ" in out


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("mmap B P READ NR\nmunmap B\n", 2, "munmap takes 2 arguments"),
        ("# hi\n\nfrobnicate 1 2\n", 3, "unknown operation"),
        ("mmap B P READ|BOGUS NR\n", 1, "unknown protection"),
        ("mmap B P READ PRIVATE|WHAT\n", 1, "unknown flag"),
        ("mprotect B+ P READ\n", 1, "bad number"),
    ],
)
def test_bad_script_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, problem: str
) -> None:
    path = write(tmp_path, text)
    assert main(["exec", path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}:{line}: " in err and problem in err


def test_empty_script_and_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exec", write(tmp_path, "# nothing\n")]) == 2
    assert main(["exec", str(PROBE), "--model-param", "nope=1"]) == 2
    assert main(["exec", str(PROBE), "--model-param", "task_size=big"]) == 2
    assert main(["exec", str(PROBE), "--base", "zzz"]) == 2
    assert main(["exec", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "no operations" in err and "--model-param nope=1" in err and "--base" in err


def test_kernel_off_linux_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.platform", "darwin")
    assert main(["exec", str(PROBE), "--target", "kernel"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "needs Linux" in err


@needs_linux
@pytest.mark.kernel
def test_range_without_arena(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A fixed range near the heap cannot get an arena: the line is named, nothing runs."""
    path = write(tmp_path, "mmap B P READ NR\nmmap 0x40000000 P READ NR\n")
    assert main(["exec", path, "--target", "kernel"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: no arena" in err


def test_values_and_names() -> None:
    assert parse_value("B+3P", base=B) == B + 3 * P
    assert parse_value("T-2*P", base=B) == (1 << 47) - 3 * P
    assert parse_value("-P", base=B) == (1 << 64) - P
    assert parse_value("0xB", base=B) == 11  # a hex number wins over the symbol
    assert parse_value("2B", base=0x1000) == 0x2000
    with pytest.raises(ValueError):
        parse_value("B*", base=B)
    script = parse_script("mmap B P READ|WRITE NR off=P # c\nmprotect B P NONE\n", base=B)
    first = script.ops[0].op
    assert (first.addr, first.length, first.prot, first.flags, first.offset) == (
        B,
        P,
        mm.PROT_READ | mm.PROT_WRITE,
        mm.NR,
        P,
    )
    assert [o.line for o in script.ops] == [1, 2]
    with pytest.raises(UsageError, match=r"x\.mm:1: "):
        parse_script("mmap B\n", source="x.mm")


def test_example_is_packaged_and_parses() -> None:
    script = load_script(PROBE)
    assert len(script.ops) == 12
    assert {o.op.kind for o in script.ops} == {"mmap", "munmap", "mprotect"}
