"""The one home of the stage test helpers: the real carphone clip, an ipc config, a stage run in
a thread (started, waited for, always stopped), and waiting on conditions, never on the clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bus.config import PipelineConfig, parse_config
from bus.stage import Stage
from deploy.assets import carphone_video

T = TypeVar("T")
S = TypeVar("S", bound=Stage)


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


def wait_for(condition: Callable[[], T], timeout: float, what: str, every: float = 0.01) -> T:
    """Poll `condition` until it is true and return its value; fail saying `what` did not happen.

    Deadlines are generous (a loaded 2-core machine): they bound a failure, never a success."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (waited {timeout:.0f} s)")
        time.sleep(every)


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

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the stage has written its ready file; its own error if it died first."""
        ready = self.stage.ready_file
        assert ready is not None, "give the stage a ready_file to wait for"
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if not self.thread.is_alive():
                if self.error is not None:
                    raise self.error
                raise AssertionError(f"{self.stage.name} ended before it was ready")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.stage.name} was not ready within {timeout:.0f} s")
            time.sleep(0.01)

    def join(self, timeout: float) -> None:
        """Until the stage ends by itself; fails if it does not, raises what it raised."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.stage.request_stop()
            self.thread.join(5)
            raise AssertionError(f"{self.stage.name} did not stop within {timeout} s")
        if self.error is not None:
            raise self.error

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the stage to stop and wait for it; raises what it raised."""
        self.stage.request_stop()
        self.join(timeout)


@contextmanager
def started(stage: Stage, timeout: float = 30.0) -> Iterator[StageThread]:
    """The stage running in a thread, ready (its ready file written); always stopped afterwards,
    and an error the stage raised fails the test."""
    runner = StageThread(stage).start()
    try:
        runner.wait_ready(timeout)
        yield runner
    finally:
        runner.stop()


@contextmanager
def running_stage(stage: S, timeout: float = 30.0) -> Iterator[S]:
    """started(), for tests that need only the stage."""
    with started(stage, timeout):
        yield stage
