"""Test helpers for stages: the real carphone clip, an ipc config, and a stage run in a thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from bus.config import PipelineConfig, parse_config
from bus.stage import Stage
from deploy.assets import carphone_video


@pytest.fixture(scope="session")
def clip() -> Path:
    return carphone_video()


def make_config(tmp_path: Path, camera: dict[str, Any], **bus: Any) -> PipelineConfig:
    data: dict[str, Any] = {
        "cameras": [{"id": "cam0", **camera}],
        "match": {"gallery": str(tmp_path / "g.fsg")},
        "bus": {"transport": "ipc", "ipc_dir": str(tmp_path), **bus},
    }
    return parse_config(data)


class StageThread:
    """Runs a stage's run() in a thread and keeps the exception it raised, if any."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.stage.run()
        except BaseException as exc:
            self.error = exc

    def start(self) -> StageThread:
        self.thread.start()
        return self

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.stage.request_stop()
            self.thread.join(5)
            raise AssertionError(f"{self.stage.name} did not stop within {timeout} s")
        if self.error is not None:
            raise self.error
