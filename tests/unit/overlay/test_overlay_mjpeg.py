"""The MJPEG server over real HTTP on 127.0.0.1 (urllib and a raw socket for the stream)."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from overlay.mjpeg import BOUNDARY, MjpegServer


@pytest.fixture
def server() -> Iterator[MjpegServer]:
    srv = MjpegServer("127.0.0.1", 0, ["cam0", "door-1"])
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def frame(clip: Path) -> np.ndarray:
    ok, image = cv2.VideoCapture(str(clip)).read()
    assert ok
    return image


def _decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def test_page_lists_every_camera(server: MjpegServer) -> None:
    assert server.port > 0
    status, ctype, body = _get(server.url)
    assert status == 200 and ctype.startswith("text/html")
    page = body.decode()
    assert '<img src="/stream/cam0"' in page
    assert '<img src="/stream/door-1"' in page


def test_snapshot_is_the_latest_frame(server: MjpegServer, frame: np.ndarray) -> None:
    status, _, _ = _get(f"{server.url}snapshot/cam0.jpg")
    assert status == 503  # nothing drawn yet
    server.publish("cam0", np.zeros_like(frame))
    server.publish("cam0", frame)
    status, ctype, body = _get(f"{server.url}snapshot/cam0.jpg")
    assert status == 200 and ctype == "image/jpeg"
    assert body[:2] == b"\xff\xd8"
    image = _decode(body)
    assert image.shape == frame.shape
    assert np.abs(image.astype(int) - frame.astype(int)).mean() < 6


def test_unknown_camera_and_path_are_404(server: MjpegServer) -> None:
    assert _get(f"{server.url}snapshot/nope.jpg")[0] == 404
    assert _get(f"{server.url}stream/nope")[0] == 404
    assert _get(f"{server.url}favicon.ico")[0] == 404


def _read_until(sock: socket.socket, marker: bytes, buf: bytes) -> bytes:
    while marker not in buf:
        chunk = sock.recv(65536)
        assert chunk, "stream closed early"
        buf += chunk
    return buf


def test_stream_sends_each_new_frame(server: MjpegServer, frame: np.ndarray) -> None:
    server.publish("cam0", frame)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET /stream/cam0 HTTP/1.0\r\n\r\n")
        buf = _read_until(sock, b"\r\n\r\n", b"")
        head, buf = buf.split(b"\r\n\r\n", 1)
        assert b"200" in head.split(b"\r\n")[0]
        assert f"multipart/x-mixed-replace; boundary={BOUNDARY}".encode() in head
        jpegs = []
        for i in range(2):
            buf = _read_until(sock, b"\r\n\r\n", buf)
            part_head, buf = buf.split(b"\r\n\r\n", 1)
            assert part_head.lstrip(b"\r\n").startswith(f"--{BOUNDARY}".encode())
            length = int(part_head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            while len(buf) < length:
                buf += sock.recv(65536)
            jpegs.append(buf[:length])
            buf = buf[length:]
            if i == 0:
                server.publish("cam0", cv2.flip(frame, 1))  # the next part is the new frame
    first, second = (_decode(j) for j in jpegs)
    assert first.shape == second.shape == frame.shape
    assert np.abs(second.astype(int) - cv2.flip(frame, 1).astype(int)).mean() < 6
    assert np.abs(first.astype(int) - frame.astype(int)).mean() < 6


def test_close_stops_serving(frame: np.ndarray) -> None:
    srv = MjpegServer("127.0.0.1", 0, ["cam0"])
    port = srv.port
    srv.publish("cam0", frame)
    stream = socket.create_connection(("127.0.0.1", port), timeout=5)
    stream.sendall(b"GET /stream/cam0 HTTP/1.0\r\n\r\n")
    assert stream.recv(100)
    srv.close()
    srv.close()  # twice is harmless
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    stream.settimeout(5)
    while stream.recv(65536):  # the open stream ends too
        pass
    stream.close()


def _status(srv: MjpegServer) -> dict[str, dict[str, object]]:
    status, ctype, body = _get(f"{srv.url}status.json")
    assert status == 200 and ctype == "application/json"
    result: dict[str, dict[str, object]] = json.loads(body)
    return result


def test_a_camera_without_frames_is_shown_down_and_comes_back(frame: np.ndarray) -> None:
    srv = MjpegServer("127.0.0.1", 0, ["cam0", "cam1"], down_after_s=0.5)
    try:
        srv.publish("cam0", frame)
        srv.publish("cam1", frame)
        assert _status(srv)["cam0"]["state"] == "live"
        # cam1 goes on, cam0 stops: after down_after_s the page, the status and the images say so.
        deadline = time.monotonic() + 20
        while _status(srv)["cam0"]["state"] != "down":
            assert time.monotonic() < deadline
            srv.publish("cam1", frame)
            time.sleep(0.05)
        state = _status(srv)
        assert state["cam1"]["state"] == "live" and float(state["cam0"]["down_s"]) >= 0.5  # type: ignore[arg-type]
        assert 'data-camera="cam0">down<' in _get(srv.url)[2].decode()
        status, _, body = _get(f"{srv.url}snapshot/cam0.jpg")
        dimmed = _decode(body)
        assert status == 200 and dimmed.shape == frame.shape
        assert dimmed.mean() < frame.mean() * 0.6  # the last frame, dimmed, with "NO VIDEO" on it
        srv.publish("cam0", frame)
        assert _status(srv)["cam0"] == {"state": "live", "down_s": None}
        assert (
            np.abs(_decode(_get(f"{srv.url}snapshot/cam0.jpg")[2]).astype(int) - frame.astype(int)).mean() < 6
        )
    finally:
        srv.close()


def test_an_open_stream_shows_the_outage(frame: np.ndarray) -> None:
    srv = MjpegServer("127.0.0.1", 0, ["cam0"], down_after_s=0.5)
    srv.publish("cam0", frame)
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(b"GET /stream/cam0 HTTP/1.0\r\n\r\n")
            buf = _read_until(sock, b"\r\n\r\n", b"").split(b"\r\n\r\n", 1)[1]
            means = []
            for _ in range(2):  # the live frame, then (no new frame coming) the outage picture
                buf = _read_until(sock, b"\r\n\r\n", buf)
                part_head, buf = buf.split(b"\r\n\r\n", 1)
                length = int(part_head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                while len(buf) < length:
                    buf += sock.recv(65536)
                means.append(_decode(buf[:length]).mean())
                buf = buf[length:]
        assert means[1] < means[0] * 0.6
    finally:
        srv.close()


def test_a_camera_that_never_sent_is_waiting(server: MjpegServer) -> None:
    assert {s["state"] for s in _status(server).values()} == {"waiting"}
