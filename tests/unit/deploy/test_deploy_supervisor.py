"""The supervisor's view of a stage's output: every line is passed on, and the last error (a log
line at ERROR, or the last line of a traceback) is kept for the message that stops the service."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deploy.supervisor import StageProcess, _forward, describe_exit
from tests.conftest import REPO

SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from bus.logs import setup_logging
    setup_logging("INFO")
    log = logging.getLogger("facestream.detect.0")
    log.info("started")
    log.error("model file %s is broken", "x.onnx")
    log.warning("a warning after the error")
    print("[ WARN:0@1.0] an OpenCV line that is no error", file=sys.stderr)
    if sys.argv[1] == "crash":
        raise RuntimeError("something unexpected")
    """
)


def _run(tmp_path: Path, mode: str) -> tuple[StageProcess, bytes, int]:
    script = tmp_path / "stage.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(script), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    stage = StageProcess("detect", 0, tmp_path / "ready")
    sink = io.BytesIO()
    assert proc.stdout is not None
    _forward(stage, proc.stdout, sink)
    return stage, sink.getvalue(), proc.wait()


def test_last_error_line_is_kept_and_output_passed_on(tmp_path: Path) -> None:
    stage, output, code = _run(tmp_path, "ok")
    assert code == 0
    assert stage.last_error == "model file x.onnx is broken"
    assert b"a warning after the error" in output and b"an OpenCV line" in output


def test_a_traceback_ends_in_its_error(tmp_path: Path) -> None:
    stage, output, code = _run(tmp_path, "crash")
    assert code == 1
    assert stage.last_error == "RuntimeError: something unexpected"
    assert b"Traceback (most recent call last)" in output


@pytest.mark.parametrize(
    ("code", "text"),
    [(-9, "killed by SIGKILL"), (-15, "killed by SIGTERM"), (3, "exit code 3"), (-99, "signal 99")],
)
def test_describe_exit(code: int, text: str) -> None:
    assert text in describe_exit(code)
