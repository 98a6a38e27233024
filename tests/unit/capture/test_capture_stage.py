"""CaptureStage over real ipc sockets with the real carphone clip (and a real HTTP MJPEG camera)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zmq

from bus.config import PipelineConfig
from bus.errors import FacestreamError
from bus.records import EndOfStream, Frame, record_from_message
from bus.topology import endpoint
from bus.wire import decode
from capture.stage import HOP_DETECT, HOP_OVERLAY, CaptureStage
from tests.stage_thread import StageThread, make_config


@dataclass
class Received:
    frames: list[Frame] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    eos: EndOfStream | None = None


class Consumer:
    """A SUB (like overlay) and a PULL (like a detect worker) on the capture's endpoints."""

    def __init__(self, config: PipelineConfig, hwm: int = 1000) -> None:
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.pull = self.ctx.socket(zmq.PULL)
        for sock in (self.sub, self.pull):
            sock.setsockopt(zmq.RCVHWM, hwm)
            sock.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoint(config.bus, "frames", 0).connect)
        self.pull.connect(endpoint(config.bus, "work", 0).connect)
        self.got = {self.sub: Received(), self.pull: Received()}

    def collect(self, socks: list[zmq.Socket[Any]] | None = None, timeout: float = 20.0) -> None:
        """Read until every socket in `socks` has delivered its EndOfStream."""
        todo = list(socks or [self.sub, self.pull])
        poller = zmq.Poller()
        for s in todo:
            poller.register(s, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        while todo:
            assert time.monotonic() < deadline, "no EndOfStream in time"
            for sock, _ in poller.poll(200):
                rec = record_from_message(decode(sock.recv_multipart(copy=False)))
                box = self.got[sock]
                if isinstance(rec, EndOfStream):
                    box.eos = rec
                    todo.remove(sock)
                    poller.unregister(sock)
                else:
                    assert isinstance(rec, Frame)
                    box.frames.append(rec)
                    box.arrivals.append(time.monotonic())

    def close(self) -> None:
        self.ctx.destroy(linger=0)


def _clip_frames(clip: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    return [cap.read()[1] for _ in range(n)]


def test_delivers_all_frames_in_order_to_sub_and_pull(tmp_path: Path, clip: Path) -> None:
    config = make_config(tmp_path, {"source": str(clip), "realtime": False}, hwm=256)
    stage = CaptureStage(config, 0)
    runner = StageThread(stage).start()
    time.sleep(0.4)  # connect late: the stage must hold frame 0 until we are subscribed
    consumer = Consumer(config)
    try:
        consumer.collect()
        runner.join(10)
    finally:
        consumer.close()
    expected = _clip_frames(clip, 2)
    for box in consumer.got.values():
        assert [f.seq for f in box.frames] == list(range(120))
        assert box.eos is not None and box.eos.seq == 119 and box.eos.reason == "end of file"
        first = box.frames[0]
        assert first.camera_id == "cam0"
        assert first.fps == pytest.approx(29.97, abs=0.01)
        assert first.stamps == {"capture": first.ts_ns}
        assert np.array_equal(first.image, expected[0])
        assert np.array_equal(box.frames[1].image, expected[1])
        ts = [f.ts_ns for f in box.frames]
        assert ts == sorted(ts)
    assert stage.dropped == {HOP_OVERLAY: 0, HOP_DETECT: 0}
    assert stage.metrics.total("facestream_messages_out") == 240


def test_counts_drops_when_a_worker_stalls(tmp_path: Path, clip: Path) -> None:
    config = make_config(tmp_path, {"source": str(clip), "realtime": False}, hwm=4)
    stage = CaptureStage(config, 0)
    consumer = Consumer(config, hwm=4)
    runner = StageThread(stage).start()
    try:
        consumer.collect([consumer.sub])  # the overlay side keeps up
        deadline = time.monotonic() + 10
        while stage.sent < 120 and time.monotonic() < deadline:
            time.sleep(0.01)
        consumer.collect([consumer.pull])  # the stalled worker wakes up once every frame was sent
        runner.join(10)
    finally:
        consumer.close()
    pulled = consumer.got[consumer.pull]
    dropped = stage.dropped[HOP_DETECT]
    assert dropped > 0
    assert len(pulled.frames) + dropped == 120
    seqs = [f.seq for f in pulled.frames]
    assert seqs == sorted(seqs) and seqs[0] == 0
    assert pulled.eos is not None and pulled.eos.seq == 119
    labels = {"stage": "capture", "worker": "0", "camera": "cam0", "hop": HOP_DETECT}
    assert stage.metrics.registry.get_sample_value("facestream_drops_total", labels) == dropped


def _run_and_time(tmp_path: Path, clip: Path, camera: dict[str, Any]) -> tuple[Received, float]:
    config = make_config(tmp_path, {"source": str(clip), **camera}, hwm=512)  # no drops: check order
    consumer = Consumer(config)
    runner = StageThread(CaptureStage(config, 0)).start()
    try:
        consumer.collect()
        runner.join(10)
    finally:
        consumer.close()
    box = consumer.got[consumer.sub]
    return box, box.arrivals[-1] - box.arrivals[0]


def test_realtime_paces_the_file_at_its_frame_rate(tmp_path: Path, clip: Path) -> None:
    paced, paced_s = _run_and_time(tmp_path / "a", clip, {"realtime": True, "max_frames": 30})
    fast, fast_s = _run_and_time(tmp_path / "b", clip, {"realtime": False, "max_frames": 30})
    assert [f.seq for f in paced.frames] == list(range(30))
    assert [f.seq for f in fast.frames] == list(range(30))
    assert paced.eos is not None and paced.eos.reason == "max_frames" and paced.eos.seq == 29
    assert paced_s >= 0.8  # 29 intervals at 29.97 fps = 0.97 s
    assert paced_s < 3.0
    assert fast_s < paced_s / 2


def test_camera_fps_caps_the_file_rate(tmp_path: Path, clip: Path) -> None:
    box, seconds = _run_and_time(tmp_path, clip, {"realtime": False, "fps": 20, "max_frames": 11})
    assert len(box.frames) == 11
    assert seconds >= 0.45  # 10 intervals of 50 ms


def test_loop_replays_the_file_until_max_frames(tmp_path: Path, clip: Path) -> None:
    box, _ = _run_and_time(tmp_path, clip, {"realtime": False, "loop": True, "max_frames": 250})
    assert [f.seq for f in box.frames] == list(range(250))
    assert box.eos is not None and box.eos.reason == "max_frames" and box.eos.seq == 249
    assert np.array_equal(box.frames[120].image, box.frames[0].image)
    assert np.array_equal(box.frames[245].image, box.frames[5].image)


def test_jpeg_on_the_wire(tmp_path: Path, clip: Path) -> None:
    config = make_config(tmp_path, {"source": str(clip), "realtime": False, "max_frames": 5}, jpeg_quality=90)
    consumer = Consumer(config)
    runner = StageThread(CaptureStage(config, 0)).start()
    try:
        consumer.collect()
        runner.join(10)
    finally:
        consumer.close()
    frames = consumer.got[consumer.sub].frames
    original = _clip_frames(clip, 1)[0]
    assert len(frames) == 5
    diff = np.abs(frames[0].image.astype(int) - original.astype(int))
    assert 0 < diff.mean() < 4  # lossy but close


def test_stops_promptly_on_request(tmp_path: Path, clip: Path) -> None:
    config = make_config(tmp_path, {"source": str(clip), "realtime": True, "loop": True})
    consumer = Consumer(config)
    stage = CaptureStage(config, 0)
    runner = StageThread(stage).start()
    try:
        deadline = time.monotonic() + 10
        while stage.sent < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        asked = time.monotonic()
        stage.request_stop()
        consumer.collect(timeout=5)
        runner.join(5)
        took = time.monotonic() - asked
    finally:
        consumer.close()
    assert took < 2.0
    eos = consumer.got[consumer.sub].eos
    assert eos is not None and eos.reason == "stopped"


def test_bad_source_fails_the_stage(tmp_path: Path) -> None:
    config = make_config(tmp_path, {"source": str(tmp_path / "missing.mp4")})
    with pytest.raises(FacestreamError, match="not found"):
        CaptureStage(config, 0).run()


class _FlakyCamera:
    """An HTTP MJPEG camera that serves `per_connection` frames per connection, `connections` times,
    then answers 404: a live feed that drops, comes back once, then is gone."""

    def __init__(self, frames: list[np.ndarray], connections: int) -> None:
        jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                if outer.requests > connections:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for jpg in jpegs:
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}\r\n\r\n"
                    self.wfile.write(head.encode() + jpg + b"\r\n")
                    time.sleep(0.01)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/video"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_live_camera_is_reopened_then_reported_lost(tmp_path: Path, clip: Path) -> None:
    camera = _FlakyCamera(_clip_frames(clip, 12), connections=2)
    config = make_config(  # hwm: a busy test thread may read late; none of the 24 may drop
        tmp_path, {"source": camera.url, "retry_s": 0.05, "max_retries": 2, "realtime": False}, hwm=256
    )
    consumer = Consumer(config)
    runner = StageThread(CaptureStage(config, 0)).start()
    try:
        consumer.collect(timeout=30)
        runner.join(10)
    finally:
        consumer.close()
        camera.close()
    box = consumer.got[consumer.sub]
    assert [f.seq for f in box.frames] == list(range(24))  # seq goes on across the reconnect
    assert box.eos is not None and box.eos.reason == "camera lost" and box.eos.seq == 23
    assert camera.requests == 4  # two streams, then two failed retries
