"""Camera loss: a looping file that disappears, a live stream that goes silent, a stream that never
comes back. Each is reported and retried with back-off; with camera.max_retries set, the camera
ends ("camera lost", exit code 3) while the other cameras of the pipeline keep running.
(Outages without max_retries, which never end a camera: tests/unit/capture/test_capture_outage.py
and tests/integration/test_redteam.py.)"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import zmq

from bus.config import parse_config
from bus.records import EndOfStream, Frame, record_from_message
from bus.topology import endpoint
from bus.wire import decode
from capture.stage import CaptureStage
from deploy.assets import carphone_video
from tests.conftest import facestream, free_base_port
from tests.fake_cameras import clip_jpegs, mjpeg_part, serve
from tests.soak.harness import PipelineRun, write_config
from tests.stage_thread import StageThread


class SilentCamera:
    """An HTTP MJPEG camera that is off (503) for its first `refused` requests, then streams
    `frames` frames, then keeps the connection open and says nothing (a camera that stops
    answering); every later request is refused with 503."""

    def __init__(self, frames: int, interval_s: float = 0.04, refused: int = 0) -> None:
        jpegs = clip_jpegs()
        self.requests = 0
        self.silent = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                if outer.requests != refused + 1:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for i in range(frames):
                        self.wfile.write(mjpeg_part(jpegs[i % len(jpegs)]))
                        time.sleep(interval_s)
                except OSError:
                    return  # the capture went away
                outer.silent.set()
                time.sleep(120)  # connected, but not a byte more

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd, self.url = serve(Handler)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Consumer:
    """Plays overlay (SUB) and a detect worker (PULL) for one capture stage."""

    def __init__(self, config: Any) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.pull = self.ctx.socket(zmq.PULL)
        for sock in (self.sub, self.pull):
            sock.setsockopt(zmq.RCVHWM, 100_000)
            sock.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoint(config.bus, "frames", 0).connect)
        self.pull.connect(endpoint(config.bus, "work", 0).connect)
        self.seqs: list[int] = []
        self.eos: EndOfStream | None = None

    def read(self, seconds: float, until_eos: bool = False) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until_eos and self.eos is not None):
            if self.sub.poll(50):
                record = record_from_message(decode(self.sub.recv_multipart(copy=False)))
                if isinstance(record, Frame):
                    self.seqs.append(record.seq)
                elif isinstance(record, EndOfStream):
                    self.eos = record
            while self.pull.poll(0):
                self.pull.recv_multipart()

    def close(self) -> None:
        self.ctx.destroy(linger=0)


class QuickTimeoutCapture(CaptureStage):
    open_timeout_s = 1.0  # read timeout: silence longer than this is a lost camera (default 5 s)


def _config(tmp_path: Path, **camera: Any) -> Any:
    (tmp_path / "ipc").mkdir(exist_ok=True)
    return parse_config(
        {
            "cameras": [{"id": "cam0", "retry_s": 0.1, "max_retries": 3, **camera}],
            "match": {"gallery": str(tmp_path / "g.fsg")},
            "bus": {"transport": "ipc", "ipc_dir": str(tmp_path / "ipc"), "hwm": 10_000},
        }
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("facestream.capture")
    ]


def test_looping_file_that_disappears_is_retried_and_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = tmp_path / "clip.mp4"
    shutil.copyfile(carphone_video(), video)
    config = _config(tmp_path, source=str(video), loop=True, fps=240, realtime=True, max_retries=6)
    consumer = Consumer(config)
    caplog.set_level(logging.INFO)
    runner = StageThread(CaptureStage(config, 0)).start()
    try:
        consumer.read(0.2)
        hidden = tmp_path / "hidden.mp4"
        video.rename(hidden)  # the open file plays to its end, the reopen for the next pass fails
        deadline = time.monotonic() + 10
        while not any("retry 1/6 failed" in m for m in _warnings(caplog)):
            consumer.read(0.05)
            assert time.monotonic() < deadline, _warnings(caplog)
        hidden.rename(video)
        consumer.read(1.0)
        runner.stage.request_stop()
        consumer.read(3.0, until_eos=True)
        runner.join(10)
    finally:
        consumer.close()
    logs = _warnings(caplog)
    assert any("camera cam0 lost" in m and "video file" in m and "not found" in m for m in logs), logs
    assert any("up again after" in r.getMessage() for r in caplog.records)
    seqs = consumer.seqs
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "frames repeated or reordered"
    assert len(seqs) > 240  # more than two passes of the 120-frame clip
    assert consumer.eos is not None and consumer.eos.reason == "stopped"


def test_stream_that_goes_silent_is_retried_then_reported_lost(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    camera = SilentCamera(frames=20)
    config = _config(tmp_path, source=camera.url, retry_s=0.1, max_retries=2)
    stage = QuickTimeoutCapture(config, 0)
    consumer = Consumer(config)
    caplog.set_level(logging.INFO)
    try:
        runner = StageThread(stage).start()
        started = time.monotonic()
        consumer.read(20, until_eos=True)
        took = time.monotonic() - started
        runner.join(10)  # the stage ends by itself, without an error
    finally:
        consumer.close()
        camera.close()
    assert consumer.seqs == list(range(20))
    assert consumer.eos is not None and consumer.eos.reason == "camera lost" and consumer.eos.seq == 19
    logs = _warnings(caplog)
    assert any("stopped delivering frames" in m for m in logs), logs
    assert sum("failed" in m and "retry" in m for m in logs) == 2, logs
    assert any("gave up after 2 retries" in m for m in logs), logs
    assert camera.requests == 3  # the stream, then two refused retries
    assert took < 10


def test_lost_camera_ends_while_the_other_camera_keeps_running(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "gallery.fsg"
    assert facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    camera = SilentCamera(frames=60, interval_s=0.04)
    base = free_base_port()
    cameras = [
        {"id": "file", "source": str(carphone_video()), "loop": True},
        {"id": "ipcam", "source": camera.url, "retry_s": 0.2, "max_retries": 2},
    ]
    config = write_config(tmp_path, gallery, base, cameras=cameras)
    run = PipelineRun(config, base).start()
    try:
        seen: dict[str, int] = {"file": 0, "ipcam": 0}
        eos: dict[str, Any] = {}
        deadline = time.monotonic() + 120
        while "ipcam" not in eos:
            assert time.monotonic() < deadline, (seen, run.stderr()[-3000:])
            msg = run.next_message(1.0)
            if msg is None:
                continue
            if msg["kind"] == "result":
                seen[msg["camera_id"]] += 1
            elif msg["kind"] == "eos":
                eos[msg["camera_id"]] = msg
        lost_at = time.time_ns()
        assert eos["ipcam"]["reason"] == "camera lost"
        assert seen["ipcam"] > 10 and seen["file"] > 10
        # The other camera goes on: fresh results keep coming, the service is up.
        for _ in range(30):
            result = run.next_result(5.0, captured_after_ns=lost_at)
            assert result is not None and result["camera_id"] == "file", run.stderr()[-3000:]
        assert run.alive() and "capture-1" not in run.stage_pids() and "capture-0" in run.stage_pids()
        code = run.stop()
    finally:
        run.close()
        camera.close()
    assert code == 0, run.stderr()[-3000:]
    log = (tmp_path / "logs" / "capture-1.log").read_text()
    assert "camera ipcam lost" in log and "retry 2/2 failed" in log and "gave up after 2 retries" in log
    assert "capture-1 gave up on its camera (camera ipcam lost: gave up after 2 retries)" in run.stderr()


def test_restarted_capture_continues_numbering_and_file_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "capture-0.state").write_text("500 100\n")  # as left by a capture killed at frame 99
    monkeypatch.setenv("FACESTREAM_STATE_DIR", str(state))
    monkeypatch.setenv("FACESTREAM_RESTARTS", "1")
    config = _config(tmp_path, source=str(carphone_video()), realtime=False)
    consumer = Consumer(config)
    try:
        runner = StageThread(CaptureStage(config, 0)).start()
        consumer.read(20, until_eos=True)
        runner.join(10)
    finally:
        consumer.close()
    assert consumer.seqs == list(range(500, 520))  # the clip's last 20 frames, numbered on
    assert consumer.eos is not None and consumer.eos.reason == "end of file" and consumer.eos.seq == 519
    assert (state / "capture-0.state").read_text().split() == ["520", "120"]


def test_restarted_capture_whose_camera_is_gone_retries_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FACESTREAM_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("FACESTREAM_RESTARTS", "1")
    (tmp_path / "capture-0.state").write_text("42 0\n")
    camera = SilentCamera(frames=0)
    camera.requests = 1  # every request is refused from now on
    config = _config(tmp_path, source=camera.url, retry_s=0.05, max_retries=2)
    consumer = Consumer(config)
    caplog.set_level(logging.INFO)
    try:
        runner = StageThread(QuickTimeoutCapture(config, 0)).start()
        consumer.read(20, until_eos=True)
        runner.join(10)
    finally:
        consumer.close()
        camera.close()
    assert consumer.seqs == []
    assert consumer.eos is not None and consumer.eos.reason == "camera lost" and consumer.eos.seq == 41
    assert any("cannot reopen after a restart" in m for m in _warnings(caplog))
    assert camera.requests == 4  # the first open, then two retries


def test_a_camera_that_is_off_when_the_service_starts_is_retried_until_it_comes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    camera = SilentCamera(frames=3000, refused=3)
    config = _config(tmp_path, source=camera.url, retry_s=0.05, retry_max_s=0.1, max_retries=None)
    consumer = Consumer(config)
    caplog.set_level(logging.INFO)
    try:
        runner = StageThread(QuickTimeoutCapture(config, 0)).start()
        deadline = time.monotonic() + 60
        while len(consumer.seqs) < 10:
            assert time.monotonic() < deadline, (camera.requests, _warnings(caplog))
            consumer.read(0.5)
        runner.stage.request_stop()
        runner.join(10)
    finally:
        consumer.close()
        camera.close()
    assert consumer.seqs[:10] == list(range(10))  # it started as a fresh camera, once it came
    assert camera.requests >= 4  # refused three times (the first open and two retries), then up
    logged = _warnings(caplog)
    assert any("cannot open it" in m and "down, retrying" in m for m in logged), logged
    assert any("up again" in r.getMessage() for r in caplog.records), logged
