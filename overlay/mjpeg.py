"""A small MJPEG server: an HTML page, a live multipart stream and a snapshot per camera.

Frames are JPEG-encoded lazily, once per new frame, and only while someone is watching.
A camera that has published no frame for `down_after_s` is shown as down: its stream and
snapshot become its last frame, dimmed, saying "NO VIDEO" and for how long, and
`/status.json` (which the page polls) says `"state": "down"`. It is live again with its next frame.
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from bus.errors import FacestreamError

BOUNDARY = "facestreamframe"
WAIT_S = 0.5  # how often an idle stream checks for shutdown
DOWN_AFTER_S = 5.0  # no frame for this long: the camera is shown as down (capture's read timeout)

log = logging.getLogger("facestream.overlay.mjpeg")


class _Latest:
    """The newest drawn frame of one camera and its JPEG, encoded on first request."""

    def __init__(self) -> None:
        self.version = 0
        self.frame: np.ndarray | None = None
        self.jpeg: bytes | None = None
        self.jpeg_version = -1
        self.published_at: float | None = None  # time.monotonic() of the last frame


def down_frame(frame: np.ndarray | None, down_s: float) -> np.ndarray:
    """What a down camera shows: its last frame dimmed (or black), with how long it has been down."""
    image = np.zeros((240, 320, 3), np.uint8) if frame is None else (frame // 3).astype(np.uint8)
    height, width = image.shape[:2]
    scale = max(0.4, min(width, height) / 400)
    for text, y in (("NO VIDEO", 0.45), (f"camera down for {down_s:.0f} s", 0.6)):
        (tw, _), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
        org = (max(0, (width - tw) // 2), int(height * y))
        cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (64, 64, 255), 2, cv2.LINE_AA)
    return image


class MjpegServer:
    """Serves the latest frame of each camera over HTTP; publish() is called by the overlay."""

    def __init__(
        self,
        host: str,
        port: int,
        camera_ids: Sequence[str],
        jpeg_quality: int = 80,
        down_after_s: float = DOWN_AFTER_S,
    ) -> None:
        self.camera_ids = list(camera_ids)
        self.jpeg_quality = jpeg_quality
        self.down_after_s = down_after_s
        self._started = time.monotonic()
        self._latest = {cid: _Latest() for cid in self.camera_ids}
        self._cond = threading.Condition()
        self._closed = False
        handler = _make_handler(self)
        try:
            self._httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise FacestreamError(f"cannot serve MJPEG on {host}:{port}: {exc.strerror}") from exc
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.1,), name="mjpeg", daemon=True
        )
        self._thread.start()

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def publish(self, camera_id: str, frame: np.ndarray) -> None:
        latest = self._latest.get(camera_id)
        if latest is None:
            return
        with self._cond:
            latest.frame = frame
            latest.version += 1
            latest.published_at = time.monotonic()
            self._cond.notify_all()

    def down_for(self, camera_id: str) -> float | None:
        """Seconds without a frame once that exceeds down_after_s (counted from start-up before
        the first frame); None while the camera is live."""
        latest = self._latest[camera_id]
        since = latest.published_at if latest.published_at is not None else self._started
        quiet = time.monotonic() - since
        return quiet if quiet >= self.down_after_s else None

    def seen(self, camera_id: str) -> bool:
        """Whether the camera has published a frame since start-up."""
        return self._latest[camera_id].published_at is not None

    def status(self) -> dict[str, dict[str, object]]:
        """Per camera: "live", "down" (no frame for down_after_s) or "waiting" (none yet; after
        down_after_s its `down_s` says for how long)."""
        out: dict[str, dict[str, object]] = {}
        for cid in self.camera_ids:
            down = self.down_for(cid)
            state = "waiting" if not self.seen(cid) else ("live" if down is None else "down")
            out[cid] = {"state": state, "down_s": None if down is None else round(down, 1)}
        return out

    def down_jpeg(self, camera_id: str, down_s: float) -> bytes | None:
        with self._cond:
            frame = self._latest[camera_id].frame
        ok, buf = cv2.imencode(
            ".jpg", down_frame(frame, down_s), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
        )
        return buf.tobytes() if ok else None

    def jpeg(self, camera_id: str, after: int = -1, timeout: float = 0.0) -> tuple[int, bytes | None]:
        """(version, JPEG) of a camera's latest frame newer than `after`, waiting up to `timeout`."""
        latest = self._latest[camera_id]
        with self._cond:
            if latest.version <= after and timeout > 0 and not self._closed:
                self._cond.wait_for(lambda: latest.version > after or self._closed, timeout)
            frame, version = latest.frame, latest.version
            if frame is None or version <= after:
                return version, None
            if latest.jpeg_version == version:
                return version, latest.jpeg
        # Encode outside the lock so that publish() (the overlay's loop) never waits on a viewer.
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        jpeg = buf.tobytes() if ok else None
        with self._cond:
            if latest.jpeg_version < version:
                latest.jpeg, latest.jpeg_version = jpeg, version
        return version, jpeg

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def page(self) -> bytes:
        status = self.status()
        cams = "\n".join(
            f'<figure><img src="/stream/{html.escape(c)}" alt="{html.escape(c)}">'
            f"<figcaption>{html.escape(c)} &middot; "
            f'<span class="state" data-camera="{html.escape(c)}">{status[c]["state"]}</span> &middot; '
            f'<a href="/snapshot/{html.escape(c)}.jpg">snapshot</a></figcaption></figure>'
            for c in self.camera_ids
        )
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>facestream</title>"
            "<style>body{font-family:sans-serif;background:#111;color:#ddd}"
            "figure{display:inline-block;margin:8px}img{max-width:100%;min-width:320px;"
            "image-rendering:auto}a{color:#8cf}.state{font-weight:bold}"
            ".down,.waiting{color:#f66}</style></head>"
            f"<body><h1>facestream</h1>\n{cams}\n{_STATUS_SCRIPT}</body></html>"
        ).encode()


# Refresh each camera's state from /status.json every 2 s (no external assets: works offline).
_STATUS_SCRIPT = """<script>
async function refresh() {
  try {
    const status = await (await fetch("/status.json", {cache: "no-store"})).json();
    for (const el of document.querySelectorAll(".state")) {
      const s = status[el.dataset.camera];
      if (!s) continue;
      el.textContent = s.state === "live" ? "live" : s.state + (s.down_s ? " for " + Math.round(s.down_s) + " s" : "");
      el.className = "state " + s.state;
    }
  } catch (e) {}
}
refresh(); setInterval(refresh, 2000);
</script>"""


def _make_handler(server: MjpegServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", server.page())
            elif path == "/status.json":
                self._send(200, "application/json", json.dumps(server.status()).encode())
            elif path.startswith("/stream/"):
                self._stream(path[len("/stream/") :])
            elif path.startswith("/snapshot/") and path.endswith(".jpg"):
                self._snapshot(path[len("/snapshot/") : -len(".jpg")])
            else:
                self._send(404, "text/plain", b"not found\n")

        def _known(self, camera_id: str) -> bool:
            if camera_id in server.camera_ids:
                return True
            self._send(404, "text/plain", f"unknown camera {camera_id!r}\n".encode())
            return False

        def _snapshot(self, camera_id: str) -> None:
            if not self._known(camera_id):
                return
            down = server.down_for(camera_id)
            if down is not None and server.seen(camera_id):
                jpeg: bytes | None = server.down_jpeg(camera_id, down)
            else:
                _, jpeg = server.jpeg(camera_id, timeout=2.0)
            if jpeg is None:
                self._send(503, "text/plain", b"no frame yet\n")
            else:
                self._send(200, "image/jpeg", jpeg)

        def _stream(self, camera_id: str) -> None:
            if not self._known(camera_id):
                return
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-cache, no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            version = -1
            shown_down = -1  # whole seconds of "down" last sent: one placeholder a second
            try:
                while not server.closed:
                    version, jpeg = server.jpeg(camera_id, after=version, timeout=WAIT_S)
                    if jpeg is None:
                        down = server.down_for(camera_id)
                        if down is None or int(down) == shown_down:
                            continue
                        shown_down = int(down)
                        jpeg = server.down_jpeg(camera_id, down)
                        if jpeg is None:
                            continue
                    else:
                        shown_down = -1
                    head = (
                        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                    ).encode()
                    self.wfile.write(head + jpeg + b"\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                return

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler
