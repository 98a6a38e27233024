"""The test's side of a MatchStage: a PUSH into match_in and a SUB on results, over real ipc."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zmq

from bus.config import PipelineConfig, parse_config
from bus.records import Embeddings, EndOfStream, MatchResult, record_from_message
from bus.topology import endpoint
from bus.wire import decode
from match.stage import MatchStage
from tests.stage_thread import running_stage


def make_config(tmp_path: Path, gallery: Path, threshold: float | None = None) -> PipelineConfig:
    return parse_config(
        {
            "cameras": [{"id": "cam0", "source": "x.mp4"}],
            "bus": {"transport": "ipc", "ipc_dir": str(tmp_path / "ipc")},
            "match": {"gallery": str(gallery), "threshold": threshold},
        }
    )


class Link:
    """The test's side of the stage: a PUSH into match_in and a SUB on results."""

    def __init__(self, config: PipelineConfig) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.connect(endpoint(config.bus, "match_in").connect)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoint(config.bus, "results").connect)

    def send(self, record: Embeddings | EndOfStream) -> None:
        self.push.send_multipart(record.to_frames())

    def recv(self, timeout_s: float = 5.0) -> MatchResult | EndOfStream:
        if not self.sub.poll(int(timeout_s * 1000)):
            raise AssertionError("no result from the match stage")
        record = record_from_message(decode(self.sub.recv_multipart()))
        assert isinstance(record, MatchResult | EndOfStream)
        return record

    def wait_subscribed(self) -> None:
        """PUB drops messages until our subscription arrives: probe with end-of-stream markers."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.send(EndOfStream(camera_id="cam0", seq=0, ts_ns=time.time_ns()))  # a configured camera
            if self.sub.poll(100):
                while self.sub.poll(200):  # drain the other probes
                    self.sub.recv_multipart()
                return
        raise AssertionError("the results subscription never became active")

    def close(self) -> None:
        self.ctx.destroy(linger=0)


@contextmanager
def running(config: PipelineConfig, tmp_path: Path) -> Iterator[tuple[MatchStage, Link]]:
    """The stage in a thread (tests.stage_thread), subscribed to and fed by the test."""
    ready = tmp_path / "ready"
    ready.unlink(missing_ok=True)
    with running_stage(MatchStage(config, ready_file=ready)) as stage:
        link = Link(config)
        try:
            link.wait_subscribed()
            yield stage, link
        finally:
            link.close()
