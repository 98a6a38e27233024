"""open_source on real inputs: the carphone clip, bad files, bad schemes, an HTTP MJPEG camera."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from bus.errors import FacestreamError
from capture.sources import open_source


def test_file_gives_every_frame_as_bgr(clip: Path) -> None:
    src = open_source(str(clip))
    assert not src.is_live
    assert src.fps == pytest.approx(29.97, abs=0.01)
    frames = []
    while (frame := src.read()) is not None:
        frames.append(frame)
    src.close()
    src.close()  # closing twice is harmless
    assert len(frames) == 120
    assert all(f.shape == (144, 176, 3) and f.dtype == np.uint8 for f in frames)
    ok, first = cv2.VideoCapture(str(clip)).read()
    assert ok and np.array_equal(frames[0], first)
    assert src.read() is None


@pytest.mark.parametrize("threads", [1, 3])
def test_a_file_is_decoded_with_the_threads_asked_for_and_the_same_frames(clip: Path, threads: int) -> None:
    src = open_source(str(clip), decode_threads=threads)
    assert src.decode_threads == threads and f"{threads} decoding thread" in src.describe()
    default = cv2.VideoCapture(str(clip))
    for _ in range(30):
        ok, expected = default.read()
        frame = src.read()
        assert ok and frame is not None and np.array_equal(frame, expected)
    src.close()


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FacestreamError, match=r"^video file .*nope\.mp4 not found$"):
        open_source(str(missing))


def test_folder_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(FacestreamError, match="is not a file"):
        open_source(str(tmp_path))


def test_garbage_file(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    expected = r"cannot read video .*garbage\.mp4: not a video or unsupported codec"
    with pytest.raises(FacestreamError, match=expected):
        open_source(str(bad))


def test_unknown_scheme() -> None:
    with pytest.raises(FacestreamError) as err:
        open_source("ftp://example.com/cam.mp4")
    assert str(err.value) == (
        "unknown camera source 'ftp://example.com/cam.mp4': "
        "use a file path, a webcam index or an rtsp/http URL"
    )


def test_unavailable_webcam() -> None:
    with pytest.raises(FacestreamError, match="cannot open webcam 99"):
        open_source("99")


def test_unreachable_stream_fails_fast_and_hides_password() -> None:
    started = time.monotonic()
    with pytest.raises(FacestreamError, match="cannot open camera stream") as err:
        open_source("rtsp://admin:s3cret@127.0.0.1:1/live", timeout_s=2.0)
    assert time.monotonic() - started < 10
    assert "s3cret" not in str(err.value)
    assert "admin:***@127.0.0.1" in str(err.value)


class _MjpegCamera:
    """A real HTTP MJPEG camera (multipart/x-mixed-replace), as many IP cameras serve."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for jpg in jpegs:
                    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpg)}\r\n\r\n"
                    self.wfile.write(head.encode() + jpg + b"\r\n")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/video"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mjpeg_camera(clip: Path) -> Iterator[_MjpegCamera]:
    cap = cv2.VideoCapture(str(clip))
    frames = [cap.read()[1] for _ in range(10)]
    cam = _MjpegCamera(frames)
    yield cam
    cam.close()


def test_http_mjpeg_stream_is_live(mjpeg_camera: _MjpegCamera) -> None:
    src = open_source(mjpeg_camera.url, timeout_s=3.0)
    assert src.is_live
    frames = []
    while (frame := src.read()) is not None:
        frames.append(frame)
    src.close()
    assert len(frames) == 10
    assert frames[0].shape == (144, 176, 3)
