"""`mmrace run --engine` and `--agent`: only where they mean something, one line otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from stress.cli import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--target", "model", "--engine", "native"],
            "mmrace run: error: --engine: only the kernel target has engines (native or python)",
        ),
        (
            ["--target", "kernel", "--agent", "native"],
            "mmrace run: error: --agent: only with --target agent",
        ),
    ],
)
def test_misplaced_flags_are_one_line_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = main(["run", *argv, "--rounds", "1", "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]


def test_an_unknown_engine_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--target", "kernel", "--engine", "rust"])
    assert exited.value.code == 2
    assert "--engine: invalid choice: 'rust'" in capsys.readouterr().err
