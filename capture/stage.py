"""The capture process: one camera -> frames on a PUB (overlay) and a PUSH (detect workers).

Sends never block on a slow consumer: a full queue drops the frame and counts it per hop, so
live video never builds a backlog. Files can be paced at their own rate or replayed.

A camera that is lost (a live source that stops delivering or stops answering, a looping file
that cannot be reopened) is shown as down (log, `facestream_camera_up` 0) and reopened with a
doubling back-off capped at `camera.retry_max_s`, forever by default; once it delivers again it
is up and its frames flow on by themselves. Only with `camera.max_retries` set does the capture
give up: it sends an EndOfStream "camera lost" and ends with exit code 3 (ExitReason.CAMERA_LOST)
so that restart policies apply; the other cameras keep running. Under the supervisor a
restarted capture continues its seq numbering and its file position (capture/position.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import zmq
from prometheus_client import Counter, Gauge

from bus.config import PipelineConfig
from bus.errors import ExitReason, FacestreamError
from bus.records import EndOfStream, Frame
from bus.stage import Stage
from bus.topology import endpoint, restart_count
from capture.backoff import retry_delays
from capture.position import Position, PositionFile
from capture.sources import VideoSource, is_live_source, open_source

HOP_OVERLAY = "capture->overlay"
HOP_DETECT = "capture->detect"
CLOSE_LINGER_MS = 1000  # let queued frames and the EndOfStream reach peers before exit


class CaptureStage(Stage):
    name: ClassVar[str] = "capture"
    peer_wait_s: ClassVar[float] = 10.0  # how long to wait for the first subscriber and worker
    poll_ms: ClassVar[int] = 0  # no inputs: tick() paces the loop itself
    eos_timeout_ms: ClassVar[int] = 2000
    open_timeout_s: ClassVar[float] = 5.0

    def __init__(self, config: PipelineConfig, index: int = 0, ready_file: Path | None = None) -> None:
        super().__init__(config, index, ready_file)
        if not 0 <= index < len(config.cameras):
            raise FacestreamError(
                f"capture index {index} is out of range: the config has {len(config.cameras)} camera(s)"
            )
        self.camera = config.cameras[index]
        self.sent = 0  # frames read and sent (or dropped) so far
        self.dropped = {HOP_OVERLAY: 0, HOP_DETECT: 0}
        self.last_seq = -1
        self.position = PositionFile.for_camera(index)
        self.seq = 0  # the next frame's seq (a restart continues the numbering)
        self.start_frame = 0  # frames of the file already sent before a restart
        self._file_frame = 0  # frames of the file's current pass read so far
        self._next_due = 0.0  # when the next frame of a paced file or a thinned camera is due
        self._peers_checked = False
        self.end_reason = "stopped"  # the EndOfStream reason, once the camera ends by itself
        labels = {"stage": self.name, "worker": str(index), "camera": self.camera.id}
        camera_up = Gauge(
            "facestream_camera_up",
            "1 while the camera delivers frames, 0 while it is lost and being reopened",
            list(labels),
            registry=self.metrics.registry,
        )
        reopen_attempts = Counter(
            "facestream_camera_reopen_attempts",
            "Attempts to reopen a lost camera",
            list(labels),
            registry=self.metrics.registry,
        )
        self._up = camera_up.labels(**labels)
        self._up.set(0)
        self._attempts = reopen_attempts.labels(**labels)
        self._down_since: float | None = None
        self.source: VideoSource | None = None
        self.pub: zmq.Socket[Any] | None = None
        self.push: zmq.Socket[Any] | None = None
        self.subscribers = 0

    def on_start(self) -> None:
        saved = self.position.load()
        if saved is not None:
            self.seq, self.start_frame = saved.next_seq, saved.file_frame
            self.last_seq = saved.next_seq - 1
        try:
            self.source = open_source(self.camera.source, self.open_timeout_s, self.camera.decode_threads)
        except FacestreamError as err:
            first = saved is None and restart_count() == 0
            if first and not is_live_source(self.camera.source):
                raise  # a video file that cannot be read is a configuration error: say so at once
            if first:
                # A camera that is off when the service starts (a reboot, a power cut) is down
                # like a lost one: retried with back-off while the other cameras run.
                self.log.error("camera %s: cannot open it (%s); down, retrying", self.camera.id, err)
            else:
                self.log.warning("camera %s: cannot reopen after a restart (%s)", self.camera.id, err)
        if self.source is not None:
            self.source.seek(self.start_frame)
            self.log.info("camera %s: %s", self.camera.id, self.source.describe())
            self._set_up(True)
        if saved is not None:
            self.log.warning(
                "camera %s: restarted; continuing at seq %d (file frame %d)",
                self.camera.id,
                self.seq,
                self.start_frame,
            )
        bus = self.config.bus
        self.pub = self.socket(zmq.XPUB, bind=[endpoint(bus, "frames", self.index).bind])
        self.pub.setsockopt(zmq.XPUB_NODROP, 1)  # a full subscriber queue raises Again: we count it
        self.push = self.socket(zmq.PUSH, bind=[endpoint(bus, "work", self.index).bind])

    def _sockets(self) -> tuple[zmq.Socket[Any], zmq.Socket[Any]]:
        """The two output sockets (open once on_start has run; the loop never runs before it)."""
        assert self.pub is not None and self.push is not None, "capture's sockets are opened in on_start"
        return self.pub, self.push

    # --- peers -----------------------------------------------------------------------------
    def _read_subscriptions(self) -> None:
        pub, _ = self._sockets()
        while True:
            try:
                msg = pub.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg[:1] == b"\x01":
                self.subscribers += 1
            elif msg[:1] == b"\x00":
                self.subscribers = max(0, self.subscribers - 1)

    def _wait_for_peers(self) -> None:
        """Hold the first frame until a subscriber and a worker are connected (slow joiner)."""
        pub, push = self._sockets()
        deadline = time.monotonic() + self.peer_wait_s
        have_sub = have_worker = False
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            poller = zmq.Poller()
            if not have_sub:
                poller.register(pub, zmq.POLLIN)
            if not have_worker:
                poller.register(push, zmq.POLLOUT)
            ready = dict(poller.poll(50))
            if pub in ready:
                self._read_subscriptions()
                have_sub = self.subscribers > 0
            if push in ready:
                have_worker = True
            if have_sub and have_worker:
                return
        if not self.stop_event.is_set():
            wanted = (("overlay subscriber", have_sub), ("detect worker", have_worker))
            missing = [what for what, ok in wanted if not ok]
            self.log.warning(
                "camera %s: no %s after %.0f s; sending anyway (frames are dropped until one connects)",
                self.camera.id,
                " or ".join(missing),
                self.peer_wait_s,
            )

    # --- sending ---------------------------------------------------------------------------
    def _send_frame(self, image: np.ndarray, seq: int, fps: float) -> None:
        started = time.perf_counter()
        ts = time.time_ns()
        frame = Frame(self.camera.id, seq, ts, stamps={"capture": ts}, image=image, fps=fps)
        parts = frame.to_frames(self.config.bus.jpeg_quality)
        for sock, hop in zip(self._sockets(), (HOP_OVERLAY, HOP_DETECT), strict=True):
            try:
                sock.send_multipart(parts, zmq.NOBLOCK, copy=False)
                self.metrics.inc_out(self.camera.id)
            except zmq.Again:
                self.metrics.drop(self.camera.id, hop)
                self.dropped[hop] += 1
        self.sent += 1
        self.last_seq = seq
        self.position.save(Position(seq + 1, self._file_frame))
        self.metrics.observe(self.camera.id, time.perf_counter() - started)

    def _send_eos(self, reason: str, timeout_ms: int) -> None:
        eos = EndOfStream(self.camera.id, max(self.last_seq, 0), time.time_ns(), reason=reason)
        parts = eos.to_frames()
        for sock, hop in zip(self._sockets(), (HOP_OVERLAY, HOP_DETECT), strict=True):
            sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
            try:
                sock.send_multipart(parts)
            except zmq.Again:
                self.metrics.drop(self.camera.id, hop)
                self.log.warning(
                    "camera %s: end of stream could not be sent on %s (peer full)", self.camera.id, hop
                )

    # --- the loop (bus.stage runs it: capture has no inputs, each tick sends a frame) ---------
    def tick(self) -> None:
        if not self._peers_checked:
            self._peers_checked = True
            self._wait_for_peers()
            self._file_frame = self.start_frame
            self._next_due = time.monotonic()
            return
        reason = self._step()
        if reason is not None:
            self.end_reason = reason
            if reason == "camera lost":
                self.exit_reason = ExitReason.CAMERA_LOST
                self.exit_detail = (
                    f"camera {self.camera.id} lost: gave up after {self.camera.max_retries} retries"
                )
            self.stop_event.set()

    def finish(self) -> None:
        """The camera ended or the stage was stopped: the EndOfStream goes to both peers."""
        reason = self.end_reason
        timeout = 200 if reason == "stopped" else self.eos_timeout_ms
        self._read_subscriptions()
        self._send_eos(reason, timeout)
        drops = self.dropped
        self.log.info(
            "camera %s: %s after %d frames (last seq %d); dropped %d to overlay, %d to detect",
            self.camera.id,
            reason,
            self.sent,
            self.last_seq,
            drops[HOP_OVERLAY],
            drops[HOP_DETECT],
        )

    def _interval(self, source: VideoSource) -> float:
        """Seconds between frames for a file: its own rate when realtime; camera.fps caps it."""
        cam = self.camera
        if cam.fps is not None:
            return 1.0 / cam.fps
        if cam.realtime:
            return 1.0 / (source.fps or 25.0)
        return 0.0

    def _out_fps(self, source: VideoSource) -> float:
        if source.is_live and self.camera.fps is not None:
            return min(source.fps, self.camera.fps) if source.fps else self.camera.fps
        return source.fps

    def _step(self) -> str | None:
        """Read the next frame and send it when it is due; the EndOfStream reason once the
        camera ends (None while it goes on). A lost camera is reopened here (see _reopen)."""
        cam = self.camera
        if cam.max_frames is not None and self.seq >= cam.max_frames:
            return "max_frames"
        source = self.source
        if source is None:  # the first open failed (a live camera away at start, or after a restart)
            return self._reopened("cannot open it", cam.retry_s)
        image = source.read()
        if image is None:
            if source.is_live:
                return self._reopened("it stopped delivering frames", cam.retry_s)
            if cam.loop and self._file_frame > 0:
                self._file_frame = 0
                return self._reopened("", 0.0)  # a normal replay: no waiting, no report
            return "end of file"
        self._file_frame += 1
        now = time.monotonic()
        if source.is_live:
            # Live cameras set their own pace; camera.fps only thins them out.
            if cam.fps is not None:
                if now < self._next_due:
                    return None
                self._next_due = max(self._next_due + 1.0 / cam.fps, now)
        else:
            interval = self._interval(source)
            if interval > 0:
                if self._next_due > now and self.stop_event.wait(self._next_due - now):
                    return "stopped"
                # Fall behind by more than a frame (slow disk, busy host): restart the clock.
                self._next_due = max(self._next_due + interval, time.monotonic() - interval)
        self._read_subscriptions()
        self._send_frame(image, self.seq, self._out_fps(source))
        self.seq += 1
        return None

    def _reopened(self, why: str, first_wait: float) -> str | None:
        """None once the camera is back; else why it ended (stopped, or lost for good)."""
        if self._reopen(why, first_wait):
            return None
        return "stopped" if self.stop_event.is_set() else "camera lost"

    def _reopen(self, why: str, first_wait: float) -> bool:
        """Show the camera as down, back off and reopen it; True once it is up again.

        Retries go on forever unless `camera.max_retries` is set (then False after that many);
        False also on stop. `first_wait` 0 tries at once without a report (a looping file's
        replay); only failures after it count as retries.
        """
        cam = self.camera
        shown = cam.id
        if self.source is not None:
            shown = self.source.name  # passwords in URLs are already masked here
            self.source.close()
            self.source = None
        if first_wait <= 0:
            try:
                self.source = open_source(cam.source, self.open_timeout_s, cam.decode_threads)
                return True
            except FacestreamError as err:
                why = f"cannot reopen it: {err}"
            first_wait = cam.retry_s
        self._set_up(False)
        self.log.warning("camera %s lost (%s: %s): down, reopening in %.2g s", cam.id, shown, why, first_wait)
        limit = "" if cam.max_retries is None else f"/{cam.max_retries}"
        delays = retry_delays(first_wait, cam.retry_max_s, cam.max_retries)
        delay = next(delays, None)
        attempt = 0
        while delay is not None:
            if self.stop_event.wait(delay):
                return False
            attempt += 1
            self._attempts.inc()
            try:
                self.source = open_source(cam.source, self.open_timeout_s, cam.decode_threads)
            except FacestreamError as err:
                delay = next(delays, None)
                after = "giving up" if delay is None else f"next in {delay:.2g} s"
                self.log.warning("camera %s: retry %d%s failed (%s); %s", cam.id, attempt, limit, err, after)
                continue
            self._set_up(True)
            return True
        self.log.error("camera %s lost: gave up after %d retries", cam.id, attempt)
        return False

    def _set_up(self, up: bool) -> None:
        """The camera's state, as a metric and as one log line per change."""
        self._up.set(int(up))
        now = time.monotonic()
        if not up:
            if self._down_since is None:
                self._down_since = now
        elif self._down_since is not None:
            self.log.info("camera %s up again after %.1f s down", self.camera.id, now - self._down_since)
            self._down_since = None

    def on_stop(self) -> None:
        if self.source is not None:
            self.source.close()
        self.position.close()
        for sock in (self.pub, self.push):
            if sock is not None and not sock.closed:
                sock.close(linger=CLOSE_LINGER_MS)
