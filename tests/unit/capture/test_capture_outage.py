"""A lost camera is retried forever by default with a capped back-off, shown as down while it
is away (metric and log), and its frames flow on by themselves when it is back; only a
configured max_retries ends it, as CAMERA_LOST (exit code 3)."""

from __future__ import annotations

import itertools
import logging
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from bus.errors import ExitReason
from bus.records import EndOfStream, Frame, record_from_message
from bus.topology import endpoint
from bus.wire import decode
from capture.backoff import retry_delays
from capture.stage import CaptureStage
from tests.fake_cameras import LIVE, REFUSED, ToggleCamera
from tests.stage_thread import StageThread, make_config


class Reader:
    """Reads the capture's frames (SUB, like the overlay) and drains its work socket in a thread."""

    def __init__(self, config: Any) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.pull = self.ctx.socket(zmq.PULL)
        for sock in (self.sub, self.pull):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, 100_000)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(endpoint(config.bus, "frames", 0).connect)
        self.pull.connect(endpoint(config.bus, "work", 0).connect)
        self.seqs: list[int] = []
        self.eos: EndOfStream | None = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sub, zmq.POLLIN)
        poller.register(self.pull, zmq.POLLIN)
        while not self._stop.is_set():
            for sock, _ in poller.poll(50):
                msg = sock.recv_multipart(copy=False)
                if sock is self.sub:
                    record = record_from_message(decode(msg))
                    if isinstance(record, Frame):
                        self.seqs.append(record.seq)
                    elif isinstance(record, EndOfStream):
                        self.eos = record

    def wait(self, predicate: Any, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not reached in time"
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.ctx.destroy(linger=0)


def _up(stage: CaptureStage) -> float | None:
    return stage.metrics.registry.get_sample_value(
        "facestream_camera_up", {"stage": "capture", "worker": "0", "camera": "cam0"}
    )


def test_retry_delays_double_up_to_the_cap_forever_by_default() -> None:
    assert list(itertools.islice(retry_delays(2.0, 30.0, None), 7)) == [2, 4, 8, 16, 30, 30, 30]
    assert list(retry_delays(0.5, 1.0, 3)) == [0.5, 1.0, 1.0] and list(retry_delays(1, 1, 0)) == []


def test_a_camera_down_for_many_retries_comes_back_by_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    camera = ToggleCamera()
    # hwm: a busy machine may leave the reader late; no frame may drop for the numbering check
    config = make_config(tmp_path, {"source": camera.url, "retry_s": 0.1, "retry_max_s": 0.3}, hwm=256)
    assert config.cameras[0].max_retries is None  # the default: never give up
    stage = CaptureStage(config, 0)
    reader = Reader(config)
    caplog.set_level(logging.INFO)
    runner = StageThread(stage).start()
    try:
        reader.wait(lambda: len(reader.seqs) >= 10)
        assert _up(stage) == 1
        camera.mode = REFUSED
        before = camera.requests
        reader.wait(lambda: camera.requests >= before + 8)  # 8 failed reopens: more than 5 (the old limit)
        assert _up(stage) == 0 and runner.thread.is_alive() and reader.eos is None
        lost_at = len(reader.seqs)
        camera.mode = LIVE
        reader.wait(lambda: len(reader.seqs) >= lost_at + 10)
        assert _up(stage) == 1
        stage.request_stop()
        runner.join(20)
    finally:
        reader.close()
        camera.close()
    seqs = reader.seqs
    assert seqs == list(range(len(seqs))), "numbering goes on across the outage"
    logs = [r.getMessage() for r in caplog.records if r.name.startswith("facestream.capture")]
    assert any("camera cam0 lost" in m and "down, reopening" in m for m in logs), logs
    assert any("camera cam0 up again after" in m for m in logs), logs
    retries = [m for m in logs if "retry" in m and "failed" in m]
    assert len(retries) >= 8 and all("next in" in m and "/" not in m.split("failed")[0] for m in retries)
    assert max(float(m.rsplit("next in ", 1)[1].split(" s")[0]) for m in retries) <= 0.3  # the cap
    assert stage.exit_reason == ExitReason.STOPPED


def test_with_max_retries_the_capture_gives_up_as_camera_lost(tmp_path: Path) -> None:
    camera = ToggleCamera()
    camera.mode = REFUSED
    config = make_config(tmp_path, {"source": camera.url, "retry_s": 0.05, "max_retries": 2})
    stage = CaptureStage(config, 0)
    reader = Reader(config)
    camera.mode = LIVE
    runner = StageThread(stage).start()
    try:
        reader.wait(lambda: len(reader.seqs) >= 5)
        camera.mode = REFUSED
        reader.wait(lambda: reader.eos is not None)
        runner.join(20)
    finally:
        reader.close()
        camera.close()
    assert reader.eos is not None and reader.eos.reason == "camera lost"
    assert stage.exit_reason == ExitReason.CAMERA_LOST and "gave up after 2 retries" in stage.exit_detail
    assert _up(stage) == 0


def _gstreamer_rtsp() -> bool:
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    python = shutil.which("python3", path="/usr/bin")
    return python is not None and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


@pytest.mark.skipif(
    not _gstreamer_rtsp(), reason="needs GStreamer's RTSP server (gir1.2-gst-rtsp-server-1.0, python3-gi)"
)
def test_a_silent_rtsp_stall_is_seen_within_the_read_timeout(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        ["/usr/bin/python3", str(Path(__file__).parents[2] / "rtsp_server.py"), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        config = make_config(tmp_path, {"source": f"rtsp://127.0.0.1:{port}/cam", "retry_s": 0.2})
        stage = CaptureStage(config, 0)
        reader = Reader(config)
        runner = StageThread(stage).start()
        try:
            reader.wait(lambda: len(reader.seqs) >= 15)
            server.send_signal(signal.SIGSTOP)  # the server stops; its sockets stay open
            stalled = time.monotonic()
            reader.wait(lambda: _up(stage) == 0)
            seen_after = time.monotonic() - stalled
            print(f"RTSP stall seen after {seen_after:.2f} s")  # docs/reliability.md
            server.send_signal(signal.SIGCONT)
            resumed_at = len(reader.seqs)
            reader.wait(lambda: len(reader.seqs) >= resumed_at + 15)  # back by itself
            stage.request_stop()
            runner.join(30)
        finally:
            reader.close()
    finally:
        server.send_signal(signal.SIGCONT)
        server.kill()
        server.wait()
    assert seen_after < CaptureStage.open_timeout_s + 1.5, f"stall seen after {seen_after:.1f} s"
