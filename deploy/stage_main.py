"""Entry point of one stage process: `facestream stage NAME --config FILE [--index I]`."""

from __future__ import annotations

import logging
from pathlib import Path

from bus.config import load_config
from bus.errors import FacestreamError
from bus.logs import setup_logging
from deploy.stages import stage_class

EXIT_USER_ERROR = 2  # a bad config or input: restarting will not help


def run_stage(name: str, config_path: Path, index: int = 0, ready_file: Path | None = None) -> int:
    setup_logging()
    log = logging.getLogger(f"facestream.{name}.{index}")
    try:
        config = load_config(config_path)
        stage = stage_class(name)(config, index, ready_file=ready_file)
        stage.run()
    except FacestreamError as exc:
        log.error("%s", exc)
        return EXIT_USER_ERROR
    return 0
