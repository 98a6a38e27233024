"""Why a stage ended reaches the supervisor as data (its exit file), never by reading its log:
the reason, the exit code that goes with it, and the detail that ends up in the service's message."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bus.config import load_config, parse_config
from bus.errors import EXIT_CODES, ExitReason, FacestreamError
from deploy import stage_main
from deploy import supervisor as supervisor_module
from deploy.stage_main import StageExit, run_stage
from deploy.supervisor import Supervisor, describe_exit, forward_log
from tests.conftest import REPO


class _Stage:
    """Stands in for a stage class: ends the way the test asks."""

    outcome: Any = None

    def __init__(self, config: Any, index: int, ready_file: Path | None = None) -> None:
        self.exit_reason = ExitReason.FINISHED
        self.exit_detail = ""

    def run(self) -> None:
        if isinstance(_Stage.outcome, BaseException):
            raise _Stage.outcome
        if _Stage.outcome is not None:
            self.exit_reason, self.exit_detail = _Stage.outcome


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps({"cameras": [{"id": "a", "source": "x.mp4"}], "match": {"gallery": "g"}}))
    parse_config(json.loads(path.read_text()))
    return path


@pytest.mark.parametrize(
    ("outcome", "reason", "detail"),
    [
        (None, ExitReason.FINISHED, ""),
        (
            (ExitReason.CAMERA_LOST, "camera a lost: gave up after 3 retries"),
            ExitReason.CAMERA_LOST,
            "gave up",
        ),
        (FacestreamError("cannot read video x.mp4"), ExitReason.USER_ERROR, "cannot read video x.mp4"),
        (RuntimeError("something unexpected"), ExitReason.CRASHED, "RuntimeError: something unexpected"),
    ],
)
def test_the_exit_file_says_why_and_the_code_follows(
    tmp_path: Path,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    outcome: Any,
    reason: ExitReason,
    detail: str,
) -> None:
    monkeypatch.setattr(stage_main, "stage_class", lambda name: _Stage)
    _Stage.outcome = outcome
    exit_file = tmp_path / "capture-0.exit"
    code = run_stage("capture", config_file, 0, exit_file=exit_file)
    ended = StageExit.read(exit_file)
    assert ended is not None and ended.reason == reason and detail in ended.detail
    assert code == EXIT_CODES[reason]
    assert json.loads(exit_file.read_text())["stage"] == "capture"


def test_a_real_stage_process_reports_a_user_error(tmp_path: Path) -> None:
    exit_file = tmp_path / "detect-0.exit"
    proc = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "stage", "detect", "--config", str(tmp_path / "none.yaml"),
         "--exit-file", str(exit_file)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    ended = StageExit.read(exit_file)
    assert (
        ended is not None and ended.reason == ExitReason.USER_ERROR and "cannot read config" in ended.detail
    )


def test_no_exit_file_means_no_reason(tmp_path: Path) -> None:
    assert StageExit.read(tmp_path / "missing.exit") is None
    (tmp_path / "bad.exit").write_text('{"reason": "bored"}')
    assert StageExit.read(tmp_path / "bad.exit") is None


def test_output_is_passed_on_unchanged() -> None:
    sink = io.BytesIO()
    forward_log(io.BytesIO(b"line one\n[ WARN:0@1.0] native\nTraceback (most recent call last):\n"), sink)
    assert sink.getvalue() == b"line one\n[ WARN:0@1.0] native\nTraceback (most recent call last):\n"


@pytest.mark.parametrize(
    ("code", "text"),
    [(-9, "killed by SIGKILL"), (-15, "killed by SIGTERM"), (3, "exit code 3"), (-99, "signal 99")],
)
def test_describe_exit(code: int, text: str) -> None:
    assert text in describe_exit(code)


# --- when the sink's end ends the service -------------------------------------------------------
class _Proc:
    """A stage process as the supervisor sees it: running (None) or exited with a code."""

    def __init__(self, code: int | None = None) -> None:
        self.returncode = code
        self.pid = 4242

    def poll(self) -> int | None:
        return self.returncode


def _supervisor(tmp_path: Path, config_file: Path) -> Supervisor:
    supervisor = Supervisor(load_config(config_file), config_file, tmp_path / "run")
    for stage in supervisor.stages:
        stage.proc = _Proc()  # type: ignore[assignment]
    return supervisor


def _end(supervisor: Supervisor, label: str, reason: ExitReason) -> None:
    stage = next(s for s in supervisor.stages if s.label == label)
    stage.exit_file.write_text(json.dumps({"stage": stage.name, "index": 0, "reason": reason}))
    stage.proc = _Proc(EXIT_CODES[reason])  # type: ignore[assignment]


def test_the_sink_and_its_last_camera_ending_together_end_the_service(
    tmp_path: Path, config_file: Path
) -> None:
    supervisor = _supervisor(tmp_path, config_file)
    _end(supervisor, "overlay-0", ExitReason.FINISHED)  # looked at first in start order
    _end(supervisor, "capture-0", ExitReason.FINISHED)
    assert supervisor.check() == 0


def test_a_camera_still_closing_when_the_sink_ends_is_waited_for(tmp_path: Path, config_file: Path) -> None:
    supervisor = _supervisor(tmp_path, config_file)
    _end(supervisor, "overlay-0", ExitReason.FINISHED)
    assert supervisor.check() is None
    _end(supervisor, "capture-0", ExitReason.FINISHED)
    assert supervisor.check() == 0


def test_a_sink_that_ends_while_its_camera_runs_on_is_started_again(
    tmp_path: Path, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    supervisor = _supervisor(tmp_path, config_file)
    overlay = next(s for s in supervisor.stages if s.name == "overlay")
    _end(supervisor, "overlay-0", ExitReason.FINISHED)
    assert supervisor.check() is None and overlay.proc is not None  # within the grace: waiting
    monkeypatch.setattr(supervisor_module, "SINK_GRACE_S", 0.0)
    assert supervisor.check() is None  # the camera still runs: a forged end, not the service's
    assert overlay.proc is None and overlay.early_ends == 1 and not overlay.restarts  # budget untouched
