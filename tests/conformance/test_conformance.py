"""`mmrace conformance`: the kernel agrees with the spec; qemu-user 7.2 does not (and its rows
say why); a runtime that breaks at start makes rows that could not run; bad input is exit 2."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

import mm
import workloads
from stress.cli import main
from stress.conformance import AGREE, DISAGREE, NOT_RUN, SKIPPED
from stress.conformance._run import _judge

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux"),
]
QEMU7 = shutil.which("qemu-x86_64")
B = 0x100000000000
P = 4096


def matrix(out: Path) -> dict[str, dict[str, str]]:
    data = json.loads((out / "conformance.json").read_text(encoding="utf-8"))
    return {row["id"]: row for row in data["rows"]}


def races_agree_or_never_raced(code: int, rows: dict[str, dict[str, str]]) -> None:
    """Every sequential case agrees (or is n/a); a race row agrees, or (a loaded machine kept
    its calls from overlapping) could not judge, which makes the command UNKNOWN (exit 3)."""
    races = [r for r in rows.values() if r["kind"] == "race"]
    assert all(r["strict"] in (AGREE, SKIPPED) for r in rows.values() if r["kind"] != "race")
    for r in races:
        assert r["strict"] == AGREE or (r["strict"] == NOT_RUN and "raced" in r["reason"]), r
    assert code == (0 if all(r["strict"] == AGREE for r in races) else 3)


def test_the_kernel_agrees_with_every_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "conf"
    code = main(["conformance", "--races", "same-page,adjacent", "--out", str(out)])
    rows = matrix(out)
    races_agree_or_never_raced(code, rows)
    if code != 0:
        return  # a loaded machine kept a race from racing: the rest is checked when it races
    sequential = [c.id for c in workloads.spec_cases() if c.kind == "sequential"]
    assert list(rows) == [*sequential, "RACE1", "adjacent"]
    assert rows["LTP17"]["strict"] == SKIPPED and "file descriptor" in rows["LTP17"]["reason"]
    others = [r for r in rows.values() if r["id"] != "LTP17"]
    assert all(r["strict"] == AGREE and r["compat"] == AGREE for r in others), others
    assert rows["KS3"]["spec"] == rows["KS3"]["target"] == "EEXIST"
    assert (out / "races" / "same-page" / "summary.json").is_file()
    printed = capsys.readouterr().out
    assert "verdict  OK" in printed and (out / "conformance.txt").read_text() in printed + "\n"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "mmrace conformance: kernel" in page and page.count(
        '<span class="badge OK">agree'
    ) == 2 * (len(rows) - 1)


def test_strict_and_compat_readings_of_a_moved_probe() -> None:
    [ks3] = [c for c in workloads.spec_cases() if c.id == "KS3"]
    params = mm.Params.reference()
    assert _judge(ks3, params, [-mm.EEXIST]) == (AGREE, AGREE)
    assert _judge(ks3, params, [0x7F0000000000]) == (DISAGREE, AGREE)  # moved: a failed probe
    assert _judge(ks3, params, [B]) == (DISAGREE, DISAGREE)  # replaced the mapping
    [h2] = [c for c in workloads.spec_cases() if c.id == "H2"]
    assert _judge(h2, params, [B]) == (DISAGREE, DISAGREE)  # a hint may not land on a mapping
    assert _judge(h2, params, [B + 8 * P]) == (AGREE, AGREE)


@pytest.mark.skipif(QEMU7 is None, reason="qemu-x86_64 (Debian package qemu-user) not installed")
def test_qemu_before_8_1_disagrees_where_it_treats_the_flag_as_a_hint(tmp_path: Path) -> None:
    import subprocess

    assert QEMU7 is not None
    version = subprocess.run([QEMU7, "--version"], capture_output=True, text=True).stdout
    if "version 7." not in version:
        pytest.skip(f"expects Debian 12's qemu-user 7.2, found {version.splitlines()[0]}")
    out = tmp_path / "conf"
    argv = ["conformance", "--target", "agent", "--wrapper", QEMU7, "--races", "same-page"]
    assert main([*argv, "--rounds", "4", "--out", str(out)]) == 1
    rows = matrix(out)
    assert (rows["KS3"]["strict"], rows["KS3"]["compat"]) == (DISAGREE, AGREE)
    assert '<tr class="conflict"><td>KS3</td>' in (out / "report.html").read_text(encoding="utf-8")
    assert rows["KS3"]["target"].startswith("0x")  # an address, not EEXIST
    assert (rows["RACE1"]["strict"], rows["RACE1"]["compat"]) == (DISAGREE, AGREE)
    assert rows["KS1"]["strict"] == AGREE  # a free range is still mapped where asked


def test_a_runtime_that_breaks_at_start_cannot_run_a_case(tmp_path: Path) -> None:
    out = tmp_path / "conf"
    argv = ["conformance", "--target", "agent", "--wrapper", "sh -c 'kill -SEGV $$'"]
    assert main([*argv, "--races", "same-page", "--out", str(out)]) == 3
    rows = matrix(out)
    assert {r["strict"] for r in rows.values()} == {NOT_RUN, SKIPPED}
    assert "SIGSEGV" in rows["KS1"]["reason"] and "SIGSEGV" in rows["RACE1"]["reason"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--wrapper", "/nonexistent/qemu"], "cannot start '/nonexistent/qemu': not found"),
        (["--races", "no-such"], "--races: 'no-such' is not a catalog workload"),
        (["--rounds", "0"], "--rounds: '0' is not a positive integer"),
        (["--target", "kernel", "--wrapper", "qemu"], "--wrapper: only the agent target"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    full = ["conformance", "--target", "agent", *argv, "--out", str(tmp_path / "c")]
    assert main(full) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


QEMU10 = Path("/opt/qemu10/usr/bin/qemu-x86_64")


@pytest.mark.skipif(
    not QEMU10.is_file(), reason=f"{QEMU10} absent (.ci/qemu unpacks qemu-user from backports)"
)
def test_qemu_10_agrees_with_every_case(tmp_path: Path) -> None:
    out = tmp_path / "conf"
    argv = ["conformance", "--target", "agent", "--wrapper", str(QEMU10), "--races", "same-page"]
    code = main([*argv, "--rounds", "8", "--out", str(out)])
    rows = matrix(out)
    cases = {k: r for k, r in rows.items() if r["kind"] != "race"}
    assert {r["strict"] for r in cases.values()} == {AGREE, SKIPPED}
    races_agree_or_never_raced(code, rows)
    assert rows["KS3"]["target"] == "EEXIST" and rows["GV4"]["target"] == "EEXIST"
