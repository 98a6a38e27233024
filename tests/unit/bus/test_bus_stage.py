"""A stage's exit reason: FINISHED when it ends by itself, STOPPED when asked to stop first, and
never rewritten by a stop request that comes after it ended."""

from __future__ import annotations

from pathlib import Path

from bus.config import parse_config
from bus.errors import ExitReason
from bus.stage import Stage


class _Once(Stage):
    """Ends by itself after `ticks` polls (like the overlay once every camera has ended)."""

    name = "once"
    poll_ms = 1

    def __init__(self, config: object, ticks: int) -> None:
        super().__init__(config, 0)  # type: ignore[arg-type]
        self.ticks = ticks

    def on_start(self) -> None:
        pass

    def tick(self) -> None:
        self.ticks -= 1
        if self.ticks <= 0:
            self.stop_event.set()


def _config(tmp_path: Path) -> object:
    return parse_config({"cameras": [{"id": "a", "source": "x"}], "match": {"gallery": str(tmp_path / "g")}})


def test_a_stage_that_ended_by_itself_stays_finished(tmp_path: Path) -> None:
    stage = _Once(_config(tmp_path), ticks=3)
    stage.run()
    stage.request_stop()  # late: a test's cleanup, a signal during shutdown
    assert stage.exit_reason == ExitReason.FINISHED


def test_a_stage_asked_to_stop_is_stopped(tmp_path: Path) -> None:
    stage = _Once(_config(tmp_path), ticks=10**9)
    stage.request_stop()
    stage.run()
    assert stage.exit_reason == ExitReason.STOPPED
