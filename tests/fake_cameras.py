"""A real HTTP MJPEG camera for outage tests: it streams the carphone clip, goes away (refuses
every request, or keeps the connection open and says nothing) and comes back on command."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2

from deploy.assets import carphone_video

LIVE, REFUSED, SILENT = "live", "refused", "silent"


def clip_jpegs(count: int = 30) -> list[bytes]:
    """The first `count` frames of the carphone clip as JPEG files."""
    cap = cv2.VideoCapture(str(carphone_video()))
    jpegs: list[bytes] = []
    while len(jpegs) < count:
        ok, image = cap.read()
        assert ok
        jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
    cap.release()
    return jpegs


def mjpeg_part(jpeg: bytes) -> bytes:
    """One part of a multipart/x-mixed-replace stream with boundary "frame"."""
    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
    return head.encode() + jpeg + b"\r\n"


def serve(handler: type[BaseHTTPRequestHandler]) -> tuple[ThreadingHTTPServer, str]:
    """An HTTP server on a free loopback port, in a thread; and its camera URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/video"


class ToggleCamera:
    """`mode` LIVE streams at `interval_s`; REFUSED ends open streams and answers 503; SILENT
    keeps open streams connected without a byte more and answers new requests the same way."""

    def __init__(self, interval_s: float = 0.04) -> None:
        jpegs = clip_jpegs()
        self.mode = LIVE
        self.requests = 0
        self.last_frame_at: float | None = None  # time.monotonic() of the last frame sent
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                if outer.mode == REFUSED:
                    self.send_error(503)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while outer.mode != REFUSED:
                        if outer.mode == SILENT:
                            time.sleep(0.05)
                            continue
                        self.wfile.write(mjpeg_part(jpegs[i % len(jpegs)]))
                        outer.last_frame_at = time.monotonic()
                        i += 1
                        time.sleep(interval_s)
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd, self.url = serve(Handler)

    def close(self) -> None:
        self.mode = REFUSED
        self.httpd.shutdown()
        self.httpd.server_close()
