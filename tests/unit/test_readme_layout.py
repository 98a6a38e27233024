"""README's "How the code is laid out" stays true: every folder, file and name it cites exists,
and every package of the repository is in its table."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEADING = "## How the code is laid out"


def _section() -> str:
    text = (REPO / "README.md").read_text()
    assert HEADING in text, "README has no layout section"
    rest = text.split(HEADING, 1)[1]
    return rest.split("\n## ", 1)[0]


def _quoted(section: str) -> list[str]:
    return re.findall(r"`([^`\s]+)`", section)


def test_every_folder_and_file_it_names_exists() -> None:
    paths = [q for q in _quoted(_section()) if "/" in q and not q.startswith("<")]
    assert len(paths) > 10
    for quoted in paths:
        path = quoted.split("/<")[0]  # `unit/<package>`: the part before the placeholder
        candidates = [REPO / path, REPO / "tests" / path]
        assert any(c.exists() for c in candidates), f"README names {quoted}, which does not exist"


def test_every_package_is_in_the_table_and_every_listed_package_exists() -> None:
    section = _section()
    listed = set(re.findall(r"^\| `(\w+)/` \|", section, re.MULTILINE))
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")}
    assert listed - {"tests"} <= packages, f"not packages: {sorted(listed - packages - {'tests'})}"
    assert packages <= listed, f"missing from README's table: {sorted(packages - listed)}"


def test_every_dotted_name_it_cites_imports() -> None:
    dotted = [q for q in _quoted(_section()) if re.fullmatch(r"[a-z_]+(\.[a-z_]+)+\.[A-Z]\w*", q)]
    assert dotted, "the section cites no classes"
    for name in dotted:
        module, attr = name.rsplit(".", 1)
        assert hasattr(importlib.import_module(module), attr), f"README cites {name}, which does not exist"
