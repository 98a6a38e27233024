"""The stage lifecycle (bus/stage.py): the exit reason (FINISHED when it ends by itself, STOPPED
when asked to stop first, never rewritten by a late stop request), finish() and on_stop() in
their order, and the depth the loop counts on every read."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq

from bus.config import parse_config
from bus.errors import ExitReason
from bus.records import EndOfStream
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


class _Traced(Stage):
    """Records the order of its lifecycle calls; its tick ends the loop, or fails."""

    name = "traced"
    poll_ms = 1

    def __init__(self, config: object, fail: bool = False) -> None:
        super().__init__(config, 0)  # type: ignore[arg-type]
        self.fail = fail
        self.calls: list[str] = []

    def on_start(self) -> None:
        self.calls.append("on_start")

    def tick(self) -> None:
        self.calls.append("tick")
        if self.fail:
            raise RuntimeError("tick failed")
        self.stop_event.set()

    def finish(self) -> None:
        self.calls.append("finish")

    def on_stop(self) -> None:
        self.calls.append("on_stop")


def test_finish_runs_after_the_loop_and_before_on_stop(tmp_path: Path) -> None:
    stage = _Traced(_config(tmp_path))
    stage.run()
    assert stage.calls == ["on_start", "tick", "finish", "on_stop"]


def test_a_failing_loop_skips_finish_but_still_stops(tmp_path: Path) -> None:
    stage = _Traced(_config(tmp_path), fail=True)
    with pytest.raises(RuntimeError, match="tick failed"):
        stage.run()
    assert stage.calls == ["on_start", "tick", "on_stop"]


def test_read_counts_the_depth_in_total_and_per_camera(tmp_path: Path) -> None:
    config = parse_config(
        {
            "cameras": [{"id": "a", "source": "x"}, {"id": "b", "source": "y"}],
            "match": {"gallery": str(tmp_path / "g")},
        }
    )
    stage = _Traced(config)
    try:
        pull = stage.ctx.socket(zmq.PULL)
        pull.bind("inproc://depth")
        push = stage.ctx.socket(zmq.PUSH)
        push.connect("inproc://depth")
        for camera, n in (("a", 3), ("b", 2)):
            for seq in range(n):
                push.send_multipart(EndOfStream(camera, seq, 1).to_frames())
        push.send_multipart([b"a", b"not a header"])  # malformed: waited too, but has no camera
        records = stage.read(pull, pull.recv_multipart(copy=False))
        assert [r.camera_id for r in records] == ["a", "a", "a", "b", "b"]
        labels = {"stage": "traced", "worker": "0"}
        registry = stage.metrics.registry
        assert registry.get_sample_value("facestream_queue_depth", labels) == 6
        for camera, n in (("a", 3), ("b", 2)):
            depth = registry.get_sample_value("facestream_camera_queue_depth", {**labels, "camera": camera})
            assert depth == n, camera
        assert stage.read(pull) == []  # nothing waited: the depths stay as they were
        assert registry.get_sample_value("facestream_queue_depth", labels) == 6
    finally:
        stage.ctx.destroy(linger=0)
