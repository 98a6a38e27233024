"""Entry point of one stage process: `facestream stage NAME --config FILE [--index I]`.

The process ends with an exit code by reason (bus.errors.EXIT_CODES) and, with `--exit-file`,
leaves one JSON line there saying why: {"stage", "index", "reason", "detail"}. The supervisor
reads that file, not the stage's log lines; under Kubernetes point it at the container's
terminationMessagePath (/dev/termination-log) to see the reason in `kubectl describe pod`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from bus.config import load_config
from bus.errors import EXIT_CODES, ExitReason, FacestreamError
from bus.logs import setup_logging
from deploy.stages import stage_class

EXIT_USER_ERROR = EXIT_CODES[ExitReason.USER_ERROR]  # a bad config or input: restarting will not help


@dataclass(frozen=True)
class StageExit:
    """Why a stage process ended, as its exit file says."""

    reason: ExitReason
    detail: str = ""

    @classmethod
    def read(cls, path: Path) -> StageExit | None:
        """The exit file's reason; None when there is none (killed, or died before writing it)."""
        try:
            data = json.loads(path.read_text())
            return cls(ExitReason(data["reason"]), str(data.get("detail", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return None


def _write_exit(path: Path | None, name: str, index: int, outcome: StageExit) -> None:
    if path is None:
        return
    line = json.dumps({"stage": name, "index": index, "reason": outcome.reason, "detail": outcome.detail})
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(line + "\n")
        os.replace(tmp, path)  # the supervisor never reads half a line
    except OSError as exc:
        logging.getLogger("facestream.stage").warning("cannot write the exit file %s: %s", path, exc)


def run_stage(
    name: str,
    config_path: Path,
    index: int = 0,
    ready_file: Path | None = None,
    exit_file: Path | None = None,
) -> int:
    setup_logging(native=True)
    log = logging.getLogger(f"facestream.{name}.{index}")
    try:
        config = load_config(config_path)
        stage = stage_class(name)(config, index, ready_file=ready_file)
        stage.run()
        outcome = StageExit(stage.exit_reason, stage.exit_detail)
    except FacestreamError as exc:
        log.error("%s", exc)
        outcome = StageExit(ExitReason.USER_ERROR, str(exc))
    except Exception as exc:
        log.exception("crashed")
        outcome = StageExit(ExitReason.CRASHED, f"{type(exc).__name__}: {exc}")
    _write_exit(exit_file, name, index, outcome)
    return EXIT_CODES[outcome.reason]


def end_process(code: int) -> NoReturn:
    """End a stage process at once, as multiprocessing ends its children.

    When this is called the stage has closed what it opened (sockets, video files, databases) and
    written its exit file; the interpreter's own exit (module teardown, native libraries'
    exit-time destructors such as onnxruntime's thread pools) is skipped: a hang there once kept
    an embed stage alive after its supervisor was killed, and nothing would have ended it."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a pipe to a supervisor that is gone
            stream.flush()
    os._exit(code)
