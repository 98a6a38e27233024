"""The overlay's upstream as the tests play it: capture's and match's PUB sockets over real ipc."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from bus.config import PipelineConfig, parse_config
from bus.records import Face, Frame, MatchResult
from bus.topology import endpoint

FPS = 29.97


def overlay_config(tmp_path: Path, cameras: list[str], **overlay: Any) -> PipelineConfig:
    data: dict[str, Any] = {
        "cameras": [{"id": c, "source": "0", "realtime": False} for c in cameras],
        "match": {"gallery": str(tmp_path / "g.fsg")},
        "bus": {"transport": "ipc", "ipc_dir": str(tmp_path / "ipc"), "hwm": 256},
        "overlay": overlay,
    }
    return parse_config(data)


def bind_xpub(ctx: zmq.Context[Any], addr: str, hwm: int) -> zmq.Socket[Any]:
    """An XPUB bound at an ipc address (its folder created): it shows the overlay's subscription."""
    Path(addr[len("ipc://") :]).parent.mkdir(parents=True, exist_ok=True)
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.SNDHWM, hwm)
    sock.bind(addr)
    return sock


class Upstream:
    """What capture and match look like to the overlay: PUBs (XPUB, to see the subscription)."""

    def __init__(self, config: PipelineConfig) -> None:
        self.ctx = zmq.Context()
        self.frames = [self._pub(endpoint(config.bus, "frames", i).bind) for i in range(len(config.cameras))]
        self.results = self._pub(endpoint(config.bus, "results").bind)

    def _pub(self, addr: str) -> zmq.Socket[Any]:
        return bind_xpub(self.ctx, addr, 1000)

    def wait_subscribed(self, timeout: float = 10.0) -> None:
        for sock in [*self.frames, self.results]:
            assert sock.poll(int(timeout * 1000)), "the overlay never subscribed"
            assert sock.recv()[:1] == b"\x01"

    def frame(self, cam: int, camera_id: str, seq: int, image: np.ndarray, ts: int | None = None) -> None:
        ts = time.time_ns() if ts is None else ts
        rec = Frame(camera_id, seq, ts, stamps={"capture": ts}, image=image, fps=FPS)
        self.frames[cam].send_multipart(rec.to_frames())

    def result(self, camera_id: str, seq: int, faces: list[Face], ts: int | None = None) -> None:
        ts = time.time_ns() if ts is None else ts
        rec = MatchResult(camera_id, seq, ts, frame_size=(176, 144), faces=faces, threshold=0.36)
        self.results.send_multipart(rec.to_frames())

    def close(self) -> None:
        self.ctx.destroy(linger=0)
