"""Every command is registered statically; a missing optional extra is named in one line."""

from __future__ import annotations

import subprocess
import sys

from deploy.cli import build_parser, missing_module
from tests.conftest import REPO


def _commands() -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return set(sub.choices)  # type: ignore[arg-type]


def test_every_command_is_registered() -> None:
    expected = {"demo", "run", "stage", "enroll", "verify", "identify"}
    expected |= {"train", "export", "calibrate", "cluster", "eval", "keys"}
    assert expected <= _commands()


def _run_without(module: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """The CLI in a child in which importing `module` fails, as if it were not installed."""
    script = (
        f"import sys\nsys.modules[{module!r}] = None\nfrom deploy.cli import main\nsys.exit(main({argv!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_a_missing_extra_names_itself_and_its_install_command() -> None:
    proc = _run_without("tensorflow", ["train", "digits", "--epochs", "1"])
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("facestream: error:")]
    assert len(lines) == 1, proc.stderr
    assert "facestream[train]" in lines[0]


def test_a_missing_module_is_named_with_its_extra_only_when_it_is_optional() -> None:
    line = missing_module("calibrate", ModuleNotFoundError("no", name="psycopg.pq"))
    assert line is not None and "psycopg" in line and "facestream[postgres]" in line
    assert missing_module("calibrate", ModuleNotFoundError("no", name="analysis.calibrate")) is None


def test_a_broken_command_module_fails_loudly_not_as_an_invalid_choice() -> None:
    proc = _run_without("analysis.cli", ["calibrate", "--help"])
    assert proc.returncode != 0
    assert "invalid choice" not in proc.stderr
    assert "analysis.cli" in proc.stderr, proc.stderr
