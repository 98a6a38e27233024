"""Red team against the overlay alone (issue 12): a camera's end of stream counts only when it
comes from that camera's own capture link (its frames socket), never from the results path; and
a `published` number from the wire that jumps implausibly far is malformed, not a billion drops.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from bus.config import PipelineConfig, parse_config
from bus.errors import ExitReason
from bus.records import EndOfStream, Frame, MatchResult
from bus.topology import endpoint
from overlay.stage import OverlayStage
from tests.stage_thread import StageThread
from tests.unit.overlay.stage_io import bind_xpub


def _config(tmp_path: Path) -> PipelineConfig:
    return parse_config(
        {
            "cameras": [{"id": "cam0", "source": "0"}],
            "match": {"gallery": str(tmp_path / "g.fsg")},
            "bus": {"transport": "ipc", "ipc_dir": str(tmp_path / "ipc"), "hwm": 1000},
            "overlay": {"hold_s": 0.05, "idle_exit_s": 1.0},
        }
    )


class FakeUpstream:
    """Camera cam0's frames PUB and match's results PUB, bound where the overlay connects."""

    def __init__(self, config: PipelineConfig) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.frames = self._bind(endpoint(config.bus, "frames", 0).bind)
        self.results = self._bind(endpoint(config.bus, "results").bind)
        self.image = np.zeros((144, 176, 3), np.uint8)

    def _bind(self, addr: str) -> zmq.Socket[Any]:
        return bind_xpub(self.ctx, addr, 10_000)

    def wait_subscribed(self) -> None:
        for sock in (self.frames, self.results):
            assert sock.poll(20_000), "the overlay never subscribed"
            sock.recv()

    def frame(self, seq: int) -> None:
        self.frames.send_multipart(Frame("cam0", seq, time.time_ns(), image=self.image, fps=25.0).to_frames())

    def result(self, seq: int, published: int) -> None:
        result = MatchResult("cam0", seq, time.time_ns(), frame_size=(176, 144), published=published)
        self.results.send_multipart(result.to_frames())

    def close(self) -> None:
        self.ctx.destroy(linger=0)


def _metric(stage: OverlayStage, name: str, **labels: str) -> float:
    full = {"stage": "overlay", "worker": "0", **labels}
    return stage.metrics.registry.get_sample_value(name, full) or 0.0


def _wait(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@contextmanager
def overlay_under_attack(tmp_path: Path) -> Iterator[tuple[OverlayStage, FakeUpstream, StageThread]]:
    """A real overlay stage in a thread, subscribed to the fake capture and match."""
    config = _config(tmp_path)
    upstream = FakeUpstream(config)
    stage = OverlayStage(config, 0)
    runner = StageThread(stage).start()
    try:
        upstream.wait_subscribed()
        yield stage, upstream, runner
    finally:
        stage.request_stop()
        runner.join(30)
        upstream.close()


def _written(stage: OverlayStage) -> float:
    return _metric(stage, "facestream_messages_out_total", camera="cam0")


def test_an_end_of_stream_on_the_results_path_is_not_the_cameras_end(tmp_path: Path) -> None:
    with overlay_under_attack(tmp_path) as (stage, upstream, runner):
        for seq in range(10):
            upstream.frame(seq)
            upstream.result(seq, seq + 1)
        _wait(lambda: _written(stage) >= 10, "frames not written")
        # A peer forges the camera's end where results travel (match forwards what reaches its input).
        forged = EndOfStream("cam0", 0, time.time_ns(), reason="end of file")
        upstream.results.send_multipart(forged.to_frames())
        for seq in range(10, 60):
            upstream.frame(seq)
            upstream.result(seq, seq + 1)
            time.sleep(0.01)
        _wait(lambda: _written(stage) >= 60, "the overlay gave up")
        assert runner.thread.is_alive() and not stage.stop_event.is_set()
        assert _metric(stage, "facestream_drops_total", camera="cam0", hop="overlay_late_frame") == 0
        # The camera's own end, on its frames link, ends it.
        own = EndOfStream("cam0", 59, time.time_ns(), reason="end of file")
        upstream.frames.send_multipart(own.to_frames())
        runner.join(30)
    assert stage.exit_reason == ExitReason.FINISHED


def test_an_implausible_published_jump_is_malformed_not_drops(tmp_path: Path) -> None:
    with overlay_under_attack(tmp_path) as (stage, upstream, _runner):
        upstream.frame(0)
        upstream.result(0, 1)
        upstream.frame(1)
        upstream.result(1, 10**15)  # the reviewer's poisoned result
        upstream.frame(2)
        upstream.result(2, 5)  # an honest gap after it: 3 results dropped on the PUB hop
        _wait(
            lambda: _metric(stage, "facestream_malformed_total", kind="implausible_counter") >= 1,
            "the jump was not counted as malformed",
        )
        _wait(lambda: _written(stage) >= 3, "frames not written")
    drops = _metric(stage, "facestream_drops_total", camera="cam0", hop="match->overlay")
    assert drops < 1000, f"{drops:g} drops counted from one message"
