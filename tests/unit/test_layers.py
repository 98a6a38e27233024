"""The layers stay apart: only the app layer (deploy) and the benchmark run the pipeline, no tool
reaches into the app layer for shared code, and no two benchmark modules import each other."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOT_THE_APP = (
    "analysis",
    "faces",
    "web",
    "events",
    "bus",
    "capture",
    "detect",
    "embed",
    "match",
    "overlay",
    "trainer",
)
# What the benchmark may take from deploy: the app it measures and the scenes it feeds it.
BENCH_FROM_DEPLOY = {"deploy.assets", "deploy.ports", "deploy.scenes", "deploy.supervisor", "deploy.truth"}


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _files(package: str) -> list[Path]:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    return files


def test_no_library_package_imports_the_app_layer() -> None:
    for package in NOT_THE_APP:
        for path in _files(package):
            bad = {m for m in _imports(path) if m == "deploy" or m.startswith("deploy.")}
            assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_the_benchmark_takes_from_deploy_only_the_app_it_measures() -> None:
    for path in _files("bench"):
        bad = {m for m in _imports(path) if m.startswith("deploy.")} - BENCH_FROM_DEPLOY
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_no_two_benchmark_modules_import_each_other() -> None:
    graph = {
        p.stem: {m.split(".")[1] for m in _imports(p) if m.startswith("bench.")} for p in _files("bench")
    }
    for module, deps in graph.items():
        for dep in deps:
            assert module not in graph.get(dep, set()), f"bench.{module} and bench.{dep} import each other"


def test_every_package_is_installed() -> None:
    """A new top-level package must be in pyproject's package list, or an install lacks it."""
    pyproject = (REPO / "pyproject.toml").read_text()
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "bench"}
    missing = {p for p in packages if f'"{p}*"' not in pyproject}
    assert not missing, f"not in pyproject.toml's packages: {sorted(missing)}"
