"""The layout keeps its promises: the import contract holds, private modules stay private, the
top of `stress/` stays small, and one driver wires the stages."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
PACKAGES = ("mm", "workloads", "stress", "plots")
STAGES = ("stress.harness", "stress.history", "stress.checker", "stress.grading", "stress.report")


def _modules() -> dict[str, ast.Module]:
    found = {}
    for top in PACKAGES:
        for path in sorted((PROJECT / top).rglob("*.py")):
            name = ".".join(path.relative_to(PROJECT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = ast.parse(path.read_text(encoding="utf-8"))
    return found


def _imports(tree: ast.Module) -> list[tuple[int, str]]:
    """Every absolute module path a module imports (``from a.b import c`` gives a.b and a.b.c)."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return out


def private_crossings(modules: dict[str, ast.Module]) -> list[str]:
    """Imports of a `_private` module (or name) from outside the package that owns it."""
    bad = []
    for name, tree in modules.items():
        is_package = (PROJECT / Path(*name.split(".")) / "__init__.py").is_file()
        home = name if is_package else name.rpartition(".")[0]
        for line, path in _imports(tree):
            parts = path.split(".")
            for i, part in enumerate(parts):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:i])
                    if home != owner and not home.startswith(owner + "."):
                        bad.append(f"{name}:{line} imports {'.'.join(parts[: i + 1])}")
                    break
    return sorted(set(bad))


def test_the_import_contract_holds() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=PROJECT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_private_modules_are_never_imported_from_outside_their_package() -> None:
    assert private_crossings(_modules()) == []


def test_a_private_crossing_is_caught() -> None:
    tree = ast.parse("from stress.harness._runner import execute\n")
    assert private_crossings({"stress.report._view": tree}) == [
        "stress.report._view:1 imports stress.harness._runner"
    ]


def test_the_top_of_stress_stays_small() -> None:
    top = sorted(p.name for p in (PROJECT / "stress").glob("*.py"))
    assert len(top) <= 8, top


def test_only_the_driver_wires_every_stage() -> None:
    modules = _modules()
    wiring = []
    for name, tree in modules.items():
        imported = {path for _, path in _imports(tree)}
        stages = {s for s in STAGES if any(p == s or p.startswith(s + ".") for p in imported)}
        if not name.startswith(STAGES) and len(stages) >= len(STAGES) - 1:
            wiring.append(name)
    assert wiring == ["stress.driver"]
