"""The overlay process: each frame with its own result, drawn, written to MP4 and JSON lines, served live.

The pieces live in their own modules: the join by (camera, seq) in overlay.join (no frame ever
borrows another frame's result), per-camera state and end in overlay.camera, counters and the
summary in overlay.tally, drawing in overlay.draw, video files in overlay.writer, the live page
in overlay.mjpeg. This class wires them to the sockets.

Each camera's frames come on a socket of their own, connected to that camera's capture only, so
a frame or an end-of-stream can be checked against the link it came over.

Restarted by the supervisor after a crash (FACESTREAM_RESTARTS > 0), the overlay does not append
to the MP4 it was writing (its last fragment may be cut short): it starts at the next free
segment number, appends to the results log, and its summary covers the frames since the restart.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar

import zmq

from bus.config import PipelineConfig
from bus.errors import WireError
from bus.records import EndOfStream, Frame, MatchResult, Record
from bus.sockets import SMALL_HWM
from bus.stage import Stage
from bus.topology import endpoint, restart_count
from overlay.camera import CameraView
from overlay.draw import draw_faces
from overlay.join import FrameJoin, Joined
from overlay.mjpeg import MjpegServer
from overlay.results_log import ResultsLog
from overlay.tally import run_summary
from overlay.writer import Mp4Writer, camera_output, next_free_segment


class OverlayStage(Stage):
    name: ClassVar[str] = "overlay"
    poll_ms: ClassVar[int] = 20

    def __init__(self, config: PipelineConfig, index: int = 0, ready_file: Path | None = None) -> None:
        super().__init__(config, index, ready_file)
        ov = config.overlay
        self.restarts = restart_count()
        self.cameras: dict[str, CameraView] = {}
        for cam in config.cameras:
            writer = None
            if ov.output is not None:
                path = camera_output(ov.output, cam.id, len(config.cameras))
                # A fresh run replaces the previous output; a restarted one keeps what is there.
                first = next_free_segment(path) if self.restarts else 0
                writer = Mp4Writer(path, ov.segment_s, first)
            join = FrameJoin(ov.hold_s, ov.max_hold_s)
            view = CameraView(cam.id, join, writer, restarted=self.restarts > 0)
            self.cameras[cam.id] = view
        self.frame_links: dict[zmq.Socket[Any], str] = {}  # each camera's own frames socket
        self.results_sock: zmq.Socket[Any] | None = None
        self.results_log: ResultsLog | None = None
        self.mjpeg: MjpegServer | None = None
        self.summary: dict[str, Any] | None = None
        self._running = False  # on_start completed: a stop must then leave a playable video
        self._finished = False
        self._started = time.monotonic()
        self._first_input: float | None = None
        self._last_input = self._started
        self._last_write: float | None = None
        self._unknown_cams: set[str] = set()

    def on_start(self) -> None:
        cfg = self.config
        ov = cfg.overlay
        if ov.results_log is not None:
            self.results_log = ResultsLog(ov.results_log, append=self.restarts > 0)
        if self.restarts:
            names = sorted(c.writer.path.name for c in self.cameras.values() if c.writer is not None)
            self.log.warning("restarted (%d); video goes on in %s", self.restarts, ", ".join(names) or "-")
        if ov.mjpeg_port is not None:
            self.mjpeg = MjpegServer(ov.mjpeg_host, ov.mjpeg_port, list(self.cameras))
            self.log.info("live view on %s", self.mjpeg.url)
        for i, cam in enumerate(cfg.cameras):
            sock = self.socket(zmq.SUB, connect=[endpoint(cfg.bus, "frames", i).connect], subscribe=b"")
            self.frame_links[sock] = cam.id
            self.inputs.append(sock)
        self.results_sock = self.socket(
            zmq.SUB, connect=[endpoint(cfg.bus, "results").connect], subscribe=b"", hwm=SMALL_HWM
        )
        self.inputs.append(self.results_sock)
        self._running = True

    # --- input -----------------------------------------------------------------------------
    def process_batch(self, records: list[Record], source: zmq.Socket[Any]) -> None:
        now = time.monotonic()
        self._last_input = now
        if self._first_input is None:
            self._first_input = now
        for record in records:
            self.process(record, source)
        self._release_all(now)

    def process(self, record: Record, source: zmq.Socket[Any]) -> None:
        link = self.frame_links.get(source)  # None: the results socket
        if link is not None and record.camera_id != link:
            self.reject(
                WireError("wrong_camera", f"camera {link}'s link carried a {record.camera_id!r} message")
            )
            return
        view = self.cameras.get(record.camera_id)
        if view is None:
            if record.camera_id not in self._unknown_cams:
                self._unknown_cams.add(record.camera_id)
                self.log.warning("ignoring camera %r: it is not in the config", record.camera_id)
            return
        if isinstance(record, Frame) and link is not None:
            self.metrics.inc_in(view.camera_id)
            if not view.add_frame(record, time.monotonic()):
                self.metrics.drop(view.camera_id, "overlay_late_frame")
        elif isinstance(record, MatchResult) and link is None:
            self.metrics.inc_in(view.camera_id)
            self._add_result(view, record)
        elif isinstance(record, EndOfStream):
            if link is None:
                return  # match passes ends on; only the camera's own capture may end it here
            view.end(record)
            self.log.info("camera %s ended (%s) at seq %d", view.camera_id, record.reason, record.seq)
        else:
            self.reject(
                WireError(
                    "unexpected_kind",
                    f"a {record.KIND!r} on the overlay's {'frames' if link else 'results'} link",
                )
            )

    def _add_result(self, view: CameraView, result: MatchResult) -> None:
        dropped = view.published.dropped_before(result)
        if dropped is None:
            self.reject(
                WireError("implausible_counter", f"camera {view.camera_id}: published={result.published}")
            )
        elif dropped:
            self.metrics.drop(view.camera_id, "match->overlay", dropped)
        view.add_result(result, time.time_ns(), time.monotonic())

    # --- output ----------------------------------------------------------------------------
    def _release_all(self, now: float, force: bool = False) -> None:
        for view in self.cameras.values():
            before_missing = view.join.missing
            for joined in view.release(now, force):
                self._show(view, joined)
            if view.join.missing > before_missing:
                self.metrics.drop(view.camera_id, "frames_missing", view.join.missing - before_missing)

    def _show(self, view: CameraView, joined: Joined) -> None:
        started = time.perf_counter()
        frame, result = joined.frame, joined.result
        if view.writer is not None or self.mjpeg is not None:  # nobody sees a drawing otherwise
            drawn = draw_faces(
                frame.image,
                [] if result is None else result.faces,
                None if result is None else result.frame_size,
                no_result=result is None,
            )
            if view.writer is not None:
                view.writer.write(drawn, frame.fps)
            if self.mjpeg is not None:
                self.mjpeg.publish(view.camera_id, drawn)
        if self.results_log is not None:
            self.results_log.write(view.camera_id, joined)
        if result is None:
            self.metrics.drop(view.camera_id, "overlay_no_result")
        self._last_write = time.monotonic()
        self.metrics.inc_out(view.camera_id)
        latency = joined.latency_ms
        self.metrics.observe(
            view.camera_id,
            time.perf_counter() - started,
            since_capture=None if latency is None else latency / 1000.0,
        )

    # --- ending ----------------------------------------------------------------------------
    def tick(self) -> None:
        if self._finished:
            return
        now = time.monotonic()
        self._release_all(now)
        views = self.cameras.values()
        if all(v.done() for v in views):
            self._finish()
        elif all(v.ended for v in views) and now - self._last_input >= self._idle_limit():
            self.log.warning(
                "no input for %.1f s after every camera ended; writing what is buffered", self._idle_limit()
            )
            self._finish()

    def _idle_limit(self) -> float:
        """Never give up on buffered frames before they have had their hold to find a result."""
        return max(self.config.overlay.idle_exit_s, *(v.join.hold for v in self.cameras.values()))

    def _finish(self) -> None:
        """Flush and close every output, write the summary, and stop the loop."""
        if self._finished:
            return
        self._finished = True
        self._release_all(time.monotonic(), force=True)
        for view in self.cameras.values():
            if view.writer is not None:
                view.writer.close()
        if self.results_log is not None:
            self.results_log.close()
        start = self._first_input if self._first_input is not None else self._started
        end = self._last_write if self._last_write is not None else time.monotonic()
        per_camera = {cid: view.summary() for cid, view in self.cameras.items()}
        self.summary = s = run_summary(per_camera, max(end - start, 0.0), self.restarts)
        path = self._summary_path()
        if path is not None:
            path.write_text(json.dumps(s, indent=2) + "\n")
        self.log.info(
            "summary: %d frames (%d with result, %d without), %d faces (%d unknown, %d tracked), "
            "identities: %s; %.1f fps over %.2f s%s",
            s["frames"],
            s["frames_with_result"],
            s["frames_without_result"],
            s["faces"],
            s["unknown_faces"],
            s["tracked_faces"],
            ", ".join(s["identities"]) or "none",
            s["fps"],
            s["wall_s"],
            f"; written to {path}" if path is not None else "",
        )
        self.stop_event.set()

    def _summary_path(self) -> Path | None:
        ov = self.config.overlay
        if ov.results_log is not None:
            return ov.results_log.with_suffix(".summary.json")
        if ov.output is not None:
            return ov.output.with_suffix(".summary.json")
        return None

    def on_stop(self) -> None:
        try:
            if self._running:
                self._finish()  # stopped by a signal: still leave a playable MP4 and a summary
        finally:
            if self.mjpeg is not None:
                self.mjpeg.close()
            if self.results_log is not None:
                self.results_log.close()
