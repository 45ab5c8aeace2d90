"""The import names `mm` and `stress` are also taken by unrelated PyPI distributions: make sure
every import resolves to this project's packages, and fail loudly when it does not."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
PACKAGES = ["mm", "stress", "workloads", "plots"]


@pytest.mark.parametrize("name", PACKAGES)
def test_package_is_ours(name: str) -> None:
    module = importlib.import_module(name)
    origin = Path(module.__file__ or "").resolve()
    expected = PROJECT / name / "__init__.py"
    assert origin == expected, (
        f"import {name!r} resolved to {origin}, not this project's {expected}: an unrelated "
        f"distribution that installs a top-level {name!r} is shadowing mmrace "
        f"(pip uninstall it, or use a fresh virtual environment)"
    )


def test_python_m_stress_is_the_cli() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "stress", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("mmrace ")
