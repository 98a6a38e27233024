"""The test's side of a DetectStage: it plays capture, embed and match over real ipc sockets."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import zmq

from bus.config import BusConfig, CameraConfig, DetectConfig, MatchConfig, PipelineConfig
from bus.records import EndOfStream, FaceCrops, Frame, Record, record_from_message
from bus.sockets import make_socket
from bus.topology import endpoint
from bus.wire import decode
from detect.stage import DetectStage
from tests.stage_thread import running_stage

CAM = "cam0"


def detect_config(tmp_path: Path, **detect: Any) -> PipelineConfig:
    return PipelineConfig(
        cameras=[CameraConfig(id=CAM, source="carphone.mp4")],
        bus=BusConfig(transport="ipc", ipc_dir=tmp_path / "ipc"),
        detect=DetectConfig(**detect),
        match=MatchConfig(gallery=tmp_path / "gallery"),
    )


class Harness:
    """The test plays capture (binds "work"), embed (binds "embed_in") and match ("match_in")."""

    def __init__(self, cfg: PipelineConfig) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.push = make_socket(self.ctx, zmq.PUSH, cfg.bus, bind=[endpoint(cfg.bus, "work", 0).bind])
        self.pull = make_socket(
            self.ctx, zmq.PULL, cfg.bus, bind=[endpoint(cfg.bus, "embed_in", 0).bind], hwm=10_000
        )
        self.match = make_socket(
            self.ctx, zmq.PULL, cfg.bus, bind=[endpoint(cfg.bus, "match_in").bind], hwm=10_000
        )
        self.poller = zmq.Poller()
        self.poller.register(self.pull, zmq.POLLIN)
        self.poller.register(self.match, zmq.POLLIN)
        self.last_path = ""  # "embed" or "match": where the last received record came from

    def send(self, record: Frame | EndOfStream | FaceCrops, jpeg: int | None = None) -> None:
        frames = record.to_frames(jpeg) if isinstance(record, Frame) else record.to_frames()
        self.push.send_multipart(frames, copy=False)

    def recv(self, timeout_s: float = 20.0) -> Record:
        """The next record detect sent, to embed or straight to match."""
        ready = dict(self.poller.poll(int(timeout_s * 1000)))
        assert ready, "no output from the detect stage"
        sock = self.pull if self.pull in ready else self.match
        self.last_path = "embed" if sock is self.pull else "match"
        return record_from_message(decode(sock.recv_multipart()))

    def close(self) -> None:
        self.ctx.destroy(linger=0)


@contextmanager
def running(cfg: PipelineConfig, tmp_path: Path) -> Iterator[tuple[DetectStage, Harness]]:
    """The stage in a thread (tests.stage_thread) with the test on both sides of it."""
    harness = Harness(cfg)
    try:
        with running_stage(DetectStage(cfg, ready_file=tmp_path / "ready")) as stage:
            yield stage, harness
    finally:
        harness.close()


def counter_value(stage: DetectStage, name: str, **labels: str) -> float:
    full = {"stage": "detect", "worker": "0", **labels}
    return stage.metrics.registry.get_sample_value(f"{name}_total", full) or 0.0
