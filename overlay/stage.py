"""The overlay process: join frames with their match results, draw, write MP4/JSON lines, serve MJPEG.

Frames and results travel on different paths, so they are joined by (camera_id, seq). A frame
whose result never comes (dropped downstream) waits at most `hold_s`, then is drawn with the
camera's latest result and marked stale; frames are always written in seq order per camera.

Video is written in segments of `overlay.segment_s` (overlay.writer). Restarted by the supervisor
after a crash (FACESTREAM_RESTARTS > 0), the overlay cannot append to the MP4 it was writing (mp4v
files are only playable once closed): it starts at the next free segment number, appends to the
results log instead of truncating it, and its summary covers the frames since the restart.
"""

from __future__ import annotations

import heapq
import json
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
import zmq

from bus.records import EndOfStream, Face, Frame, MatchResult, Record
from bus.stage import Stage
from bus.topology import all_endpoints, endpoint
from overlay.draw import UNKNOWN, draw_faces
from overlay.mjpeg import MjpegServer
from overlay.writer import Mp4Writer, camera_output, check_writable, next_free_segment

MAX_BUFFERED_FRAMES = 512  # per camera: beyond this the oldest frame is written without waiting
MAX_PENDING_RESULTS = 1024  # per camera: results whose frame has not arrived (yet)
LATENCY_SAMPLES = 10_000
MAX_STALE_S = 2.0  # a stale frame borrows the latest result only if captured within this of it


@dataclass
class _Waiting:
    frame: Frame
    arrived: float  # time.monotonic() when the overlay received it


@dataclass
class _Camera:
    """Join buffers and counters of one camera."""

    camera_id: str
    writer: Mp4Writer | None = None
    frames: dict[int, _Waiting] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)  # heap of buffered seqs
    results: dict[int, tuple[MatchResult, int]] = field(default_factory=dict)  # seq -> (result, arrival ns)
    latest: MatchResult | None = None
    written_seq: int = -1
    max_frame_seq: int = -1
    ended: bool = False
    eos_on_frames: bool = False
    last_seq: int = -1
    end_reason: str = ""
    written: int = 0
    fresh: int = 0
    stale: int = 0
    faces: int = 0
    unknown: int = 0
    missing: int = 0
    late: int = 0
    published: int = 0  # the last result's number from match (gaps: results the PUB hop dropped)
    identities: set[str] = field(default_factory=set)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    def done(self) -> bool:
        """Ended, nothing buffered, and every frame up to the last seq has arrived or cannot anymore."""
        if not self.ended or self.frames:
            return False
        return self.eos_on_frames or max(self.written_seq, self.max_frame_seq) >= self.last_seq


def _restart_count() -> int:
    """How often the supervisor restarted this process (deploy/supervisor.py sets it)."""
    try:
        return max(0, int(os.environ.get("FACESTREAM_RESTARTS", "0")))
    except ValueError:
        return 0


class OverlayStage(Stage):
    name: ClassVar[str] = "overlay"
    poll_ms: ClassVar[int] = 20

    def on_start(self) -> None:
        cfg = self.config
        ov = cfg.overlay
        self._finished = False
        self.summary: dict[str, Any] | None = None
        self.log_file: IO[str] | None = None
        self.mjpeg: MjpegServer | None = None
        self.cameras: dict[str, _Camera] = {}
        self.restarts = _restart_count()
        for cam in cfg.cameras:
            writer = None
            if ov.output is not None:
                path = camera_output(ov.output, cam.id, len(cfg.cameras))
                # A fresh run replaces the previous output; a restarted one keeps what is there.
                first = next_free_segment(path) if self.restarts else 0
                writer = Mp4Writer(path, ov.segment_s, first)
            self.cameras[cam.id] = _Camera(cam.id, writer=writer)
        if ov.results_log is not None:
            check_writable(ov.results_log, "results log")
            self.log_file = ov.results_log.open("a" if self.restarts else "w", buffering=1)
        if self.restarts:
            names = sorted(c.writer.path.name for c in self.cameras.values() if c.writer is not None)
            self.log.warning("restarted (%d); video goes on in %s", self.restarts, ", ".join(names) or "-")
        if ov.mjpeg_port is not None:
            self.mjpeg = MjpegServer(ov.mjpeg_host, ov.mjpeg_port, list(self.cameras))
            self.log.info("live view on %s", self.mjpeg.url)
        frames = [e.connect for e in all_endpoints(cfg, "frames")]
        self.frames_sock = self.socket(zmq.SUB, connect=frames, subscribe=b"")
        results = [endpoint(cfg.bus, "results").connect]
        self.results_sock = self.socket(zmq.SUB, connect=results, subscribe=b"")
        self.inputs.extend([self.frames_sock, self.results_sock])
        self._started = time.monotonic()
        self._first_input: float | None = None
        self._last_input = time.monotonic()
        self._last_write: float | None = None
        self._unknown_cams: set[str] = set()

    # --- input -----------------------------------------------------------------------------
    def process_batch(self, records: list[Record], source: zmq.Socket[Any]) -> None:
        now = time.monotonic()
        self._last_input = now
        if self._first_input is None:
            self._first_input = now
        for record in records:
            self.process(record, source)
        self._emit_all(now)

    def process(self, record: Record, source: zmq.Socket[Any]) -> None:
        cam = self.cameras.get(record.camera_id)
        if cam is None:
            if record.camera_id not in self._unknown_cams:
                self._unknown_cams.add(record.camera_id)
                self.log.warning("ignoring camera %r: it is not in the config", record.camera_id)
            return
        if isinstance(record, Frame):
            self.metrics.inc_in(cam.camera_id)
            self._add_frame(cam, record)
        elif isinstance(record, MatchResult):
            self.metrics.inc_in(cam.camera_id)
            self._add_result(cam, record)
        elif isinstance(record, EndOfStream):
            cam.ended = True
            cam.last_seq = max(cam.last_seq, record.seq)
            cam.end_reason = cam.end_reason or record.reason
            if source is self.frames_sock:
                cam.eos_on_frames = True
            self.log.info("camera %s ended (%s) at seq %d", cam.camera_id, record.reason, record.seq)

    def _add_frame(self, cam: _Camera, frame: Frame) -> None:
        seq = frame.seq
        if seq <= cam.written_seq or seq in cam.frames or (cam.ended and seq > cam.last_seq):
            cam.late += 1
            self.metrics.drop(cam.camera_id, "overlay_late_frame")
            return
        if cam.max_frame_seq < 0 and self.restarts:
            cam.max_frame_seq = seq - 1  # frames before a restart of the overlay are not missing
        if seq > cam.max_frame_seq + 1:
            gap = seq - cam.max_frame_seq - 1
            cam.missing += gap
            self.metrics.drop(cam.camera_id, "frames_missing", gap)
        cam.max_frame_seq = max(cam.max_frame_seq, seq)
        cam.frames[seq] = _Waiting(frame, time.monotonic())
        heapq.heappush(cam.order, seq)

    def _add_result(self, cam: _Camera, result: MatchResult) -> None:
        arrival = time.time_ns()
        if result.published is not None:
            if cam.published and result.published > cam.published + 1:  # lower: match restarted
                self.metrics.drop(cam.camera_id, "match->overlay", result.published - cam.published - 1)
            cam.published = result.published
        if cam.latest is None or result.seq >= cam.latest.seq:
            cam.latest = result
        if result.seq <= cam.written_seq:
            return  # its frame was already written stale (or never arrived)
        cam.results[result.seq] = (result, arrival)
        if len(cam.results) > MAX_PENDING_RESULTS:
            del cam.results[min(cam.results)]

    # --- output ----------------------------------------------------------------------------
    def _emit_all(self, now: float, force: bool = False) -> None:
        for cam in self.cameras.values():
            self._emit(cam, now, force)

    def _emit(self, cam: _Camera, now: float, force: bool) -> None:
        hold = self.config.overlay.hold_s
        while cam.order:
            seq = cam.order[0]
            waiting = cam.frames[seq]
            joined = cam.results.pop(seq, None)
            if joined is None:
                overdue = now - waiting.arrived >= hold or len(cam.frames) > MAX_BUFFERED_FRAMES
                if not (force or overdue):
                    return
            heapq.heappop(cam.order)
            del cam.frames[seq]
            self._write(cam, waiting.frame, joined)
        # Results for frames that will never come (dropped before the overlay) must not pile up.
        for seq in [s for s in cam.results if s <= cam.written_seq]:
            del cam.results[seq]

    def _write(self, cam: _Camera, frame: Frame, joined: tuple[MatchResult, int] | None) -> None:
        started = time.perf_counter()
        stale = joined is None
        result = joined[0] if joined is not None else self._recent(cam.latest, frame)
        faces: list[Face] = [] if result is None else result.faces
        size = None if result is None else result.frame_size
        drawn = draw_faces(frame.image, faces, size, stale=stale)
        if cam.writer is not None:
            cam.writer.write(drawn, frame.fps)
        if self.mjpeg is not None:
            self.mjpeg.publish(cam.camera_id, drawn)
        latency_ms = None if joined is None else (joined[1] - frame.ts_ns) / 1e6
        self._log_line(cam, frame, faces, stale, latency_ms)
        cam.written += 1
        cam.written_seq = frame.seq
        if stale:
            cam.stale += 1
        else:
            cam.fresh += 1
            cam.faces += len(faces)
            cam.unknown += sum(1 for f in faces if f.name == UNKNOWN)
            cam.identities.update(f.name for f in faces if f.name is not None and f.name != UNKNOWN)
            assert latency_ms is not None
            cam.latencies_ms.append(latency_ms)
        self._last_write = time.monotonic()
        self.metrics.inc_out(cam.camera_id)
        self.metrics.observe(
            cam.camera_id,
            time.perf_counter() - started,
            since_capture=None if latency_ms is None else latency_ms / 1000.0,
        )

    @staticmethod
    def _recent(result: MatchResult | None, frame: Frame) -> MatchResult | None:
        """The camera's latest result, unless it was captured too far from this frame to still fit."""
        if result is None or abs(frame.ts_ns - result.ts_ns) > MAX_STALE_S * 1e9:
            return None
        return result

    def _log_line(
        self, cam: _Camera, frame: Frame, faces: list[Face], stale: bool, latency_ms: float | None
    ) -> None:
        if self.log_file is None:
            return
        entry = {
            "camera_id": cam.camera_id,
            "seq": frame.seq,
            "ts_ns": frame.ts_ns,
            "stale": stale,
            "latency_ms": None if latency_ms is None else round(latency_ms, 3),
            "faces": [
                {
                    "box": [round(float(v), 1) for v in f.box],
                    "name": f.name,
                    "similarity": None if f.similarity is None else round(float(f.similarity), 4),
                    "track_id": f.track_id,
                }
                for f in faces
            ],
        }
        self.log_file.write(json.dumps(entry, separators=(",", ":")) + "\n")

    # --- ending ----------------------------------------------------------------------------
    def tick(self) -> None:
        if self._finished:
            return
        now = time.monotonic()
        self._emit_all(now)
        cams = self.cameras.values()
        if all(c.done() for c in cams):
            self._finish()
        elif all(c.ended for c in cams) and now - self._last_input >= self._idle_limit():
            self.log.warning(
                "no input for %.1f s after every camera ended; writing what is buffered", self._idle_limit()
            )
            self._finish()

    def _idle_limit(self) -> float:
        """Never give up on buffered frames before they have had their hold_s to find a result."""
        ov = self.config.overlay
        return max(ov.idle_exit_s, ov.hold_s)

    def _finish(self) -> None:
        """Flush and close every output, write the summary, and stop the loop."""
        if self._finished:
            return
        self._finished = True
        self._emit_all(time.monotonic(), force=True)
        for cam in self.cameras.values():
            if cam.writer is not None:
                cam.writer.close()
        if self.log_file is not None:
            self.log_file.close()
        self.summary = self._summary()
        path = self._summary_path()
        if path is not None:
            path.write_text(json.dumps(self.summary, indent=2) + "\n")
        s = self.summary
        self.log.info(
            "summary: %d frames (%d with result, %d stale), %d faces (%d unknown), identities: %s; "
            "%.1f fps over %.2f s%s",
            s["frames"],
            s["frames_with_result"],
            s["stale_frames"],
            s["faces"],
            s["unknown_faces"],
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

    def _summary(self) -> dict[str, Any]:
        start = self._first_input if self._first_input is not None else self._started
        end = self._last_write if self._last_write is not None else time.monotonic()
        wall = max(end - start, 0.0)
        cams = list(self.cameras.values())
        frames = sum(c.written for c in cams)
        per_camera = {}
        for c in cams:
            lat = np.asarray(c.latencies_ms, dtype=np.float64)
            per_camera[c.camera_id] = {
                "frames": c.written,
                "frames_with_result": c.fresh,
                "stale_frames": c.stale,
                "faces": c.faces,
                "unknown_faces": c.unknown,
                "identities": sorted(c.identities),
                "missing_frames": c.missing,
                "late_frames": c.late,
                "last_seq": c.written_seq,
                "end_reason": c.end_reason or None,
                "output": None if c.writer is None else str(c.writer.path),  # the last segment
                "segments": [] if c.writer is None else [str(p) for p in c.writer.paths],
                "latency_ms": None
                if lat.size == 0
                else {
                    "p50": round(float(np.percentile(lat, 50)), 2),
                    "p95": round(float(np.percentile(lat, 95)), 2),
                    "max": round(float(lat.max()), 2),
                },
            }
        return {
            "frames": frames,
            "frames_with_result": sum(c.fresh for c in cams),
            "stale_frames": sum(c.stale for c in cams),
            "faces": sum(c.faces for c in cams),
            "unknown_faces": sum(c.unknown for c in cams),
            "identities": sorted(set().union(*(c.identities for c in cams))),
            "wall_s": round(wall, 3),
            "fps": round(frames / wall, 2) if wall > 0 else 0.0,
            "per_camera": per_camera,
            "overlay_restarts": self.restarts,
        }

    def on_stop(self) -> None:
        try:
            if not getattr(self, "_finished", True) and hasattr(self, "_last_input"):
                self._finish()  # stopped by a signal: still leave a playable MP4 and a summary
        finally:
            mjpeg = getattr(self, "mjpeg", None)
            if mjpeg is not None:
                mjpeg.close()
            log_file = getattr(self, "log_file", None)
            if log_file is not None and not log_file.closed:
                log_file.close()
