"""The detect worker: frames in, faces out: with crops to embed, without straight to match.

Every frame a worker takes gets its faces: detected in it, or carried by their tracks between
detections (detect.camera: motion gate, planner, tracker). Full detections are the cost, so a
worker spends them only where something changes and within its budget (detect.budget): when it
falls behind, each of its cameras gets fewer detections, evenly, and the frames in between are
followed, not dropped. Only a backlog beyond MAX_WAITING frames of one camera is dropped, oldest
first (hop "capture->detect").

A frame with a crop goes to an embed worker; a frame without one goes straight to match, so its
boxes never wait behind (or get dropped by) a busy embedder. Output never blocks: when every
embed worker is full, the frame's faces go to match without their crops (the boxes still reach
the viewer) and the tracks ask for an embedding again at their next detection (hop
"detect->embed" counts it).
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import cv2
import zmq
from prometheus_client import Counter, Gauge

from bus.config import CameraConfig, PipelineConfig
from bus.errors import FacestreamError, Failure, WireError
from bus.records import EndOfStream, FaceCrops, Frame, Record
from bus.sockets import SMALL_HWM
from bus.stage import Stage, since_capture_s
from bus.topology import Endpoint, all_endpoints, endpoint
from bus.tracks import check_worker
from detect.base import Detector
from detect.budget import DetectBudget
from detect.camera import CameraDetect
from detect.factory import make_detector

EOS_WAIT_MS = 1000  # an end-of-stream may wait this long for room downstream; frames never wait
MAX_WAITING = 10  # frames of one camera taken in order; older ones beyond this are dropped


class DetectStage(Stage):
    name = "detect"

    pull: zmq.Socket[Any]  # opened in on_start
    push: zmq.Socket[Any]
    to_match: zmq.Socket[Any]

    def __init__(self, config: PipelineConfig, index: int = 0, ready_file: Path | None = None) -> None:
        super().__init__(config, index, ready_file)
        cfg = config.detect
        check_worker(index, cfg.workers)
        if cfg.threads:
            cv2.setNumThreads(cfg.threads)  # this process only; see DetectConfig
        self.camera_configs: dict[str, CameraConfig] = {c.id: c for c in config.cameras}
        self._detectors: dict[int, Detector] = {cfg.min_face: make_detector(cfg)}  # a bad model fails here
        self.cameras: dict[str, CameraDetect] = {}
        self.budget = DetectBudget(cfg.detect_interval_s, cfg.max_detect_interval_s)
        # An end that no embed worker took in EOS_WAIT_MS: the next ones do not wait (at a stop,
        # embed is often gone first, and 16 cameras would wait 16 s) until a send succeeds again.
        self.downstream_gone = False
        reg = self.metrics.registry
        self.modes = Counter(
            "facestream_detect_frames",
            "Frames by what detect spent on them: full detection, following tracked faces, or nothing",
            ["stage", "worker", "camera", "mode"],
            registry=reg,
        )
        self.interval = Gauge(
            "facestream_detect_interval_seconds",
            "Least time between two full detections of a camera, as the worker's load allows",
            ["stage", "worker"],
            registry=reg,
        )
        self.interval.labels(stage=self.name, worker=str(index)).set(self.budget.interval_s)

    @property
    def detector(self) -> Detector:
        return self._detectors[self.config.detect.min_face]

    def on_start(self) -> None:
        works = [e.connect for e in self.my_cameras()]
        outs = [e.connect for e in all_endpoints(self.config, "embed_in")]
        self.pull = self.socket(zmq.PULL, connect=works)
        self.push = self.socket(zmq.PUSH, connect=outs)
        self.to_match = self.socket(
            zmq.PUSH, connect=[endpoint(self.config.bus, "match_in").connect], hwm=SMALL_HWM
        )
        self.inputs.append(self.pull)
        self.log.info(
            "detector %s, %d camera(s) -> %d embed worker(s)", self.detector.name, len(works), len(outs)
        )

    def my_cameras(self) -> list[Endpoint]:
        """The capture endpoints this worker takes frames from (see DetectConfig.camera_affinity)."""
        cameras = all_endpoints(self.config, "work")
        workers = self.config.detect.workers
        if not self.config.detect.camera_affinity or workers == 1:
            return cameras
        if len(cameras) >= workers:
            return [ep for i, ep in enumerate(cameras) if i % workers == self.index]
        return [cameras[self.index % len(cameras)]]

    def camera(self, camera_id: str) -> CameraDetect:
        cam = self.cameras.get(camera_id)
        if cam is None:
            known = self.camera_configs.get(camera_id)
            cfg = self.config.detect if known is None else self.config.detect.for_camera(known)
            detector = self._detectors.get(cfg.min_face)
            if detector is None:
                detector = self._detectors[cfg.min_face] = make_detector(cfg)
            cam = self.cameras[camera_id] = CameraDetect(camera_id, cfg, detector, self.index)
        return cam

    # --- input -----------------------------------------------------------------------------
    def process_batch(self, records: list[Record], source: zmq.Socket[Any]) -> None:
        """Every camera's frames in order, the longest-waiting camera first; new arrivals are
        taken in after each frame, so no camera waits behind another's backlog."""
        pending: dict[str, deque[Frame]] = {}
        self.take(records, pending)
        while pending and not self.stop_event.is_set():
            camera = min(pending, key=lambda c: pending[c][0].ts_ns)
            queue = pending[camera]
            frame = queue.popleft()
            if not queue:
                del pending[camera]
            self.handle_frame(frame, behind=bool(queue))
            self.take(self.read(source), pending)

    def take(self, records: list[Record], pending: dict[str, deque[Frame]]) -> None:
        for record in records:
            if isinstance(record, Frame):
                self.metrics.inc_in(record.camera_id)
                queue = pending.setdefault(record.camera_id, deque())
                queue.append(record)
                if len(queue) > MAX_WAITING:
                    queue.popleft()
                    self.metrics.drop(record.camera_id, "capture->detect")
                    self.camera(record.camera_id).dropped += 1
            elif isinstance(record, EndOfStream):
                self.metrics.inc_in(record.camera_id)
                for last in pending.pop(record.camera_id, deque()):  # its frames go out before its end
                    self.handle_frame(last, behind=False)
                self.forward_eos(record)
            else:
                self.reject(WireError("unexpected_kind", f"detect takes frames, got a {record.KIND!r}"))

    # --- one frame ---------------------------------------------------------------------------
    def handle_frame(self, frame: Frame, behind: bool) -> None:
        camera = frame.camera_id
        start = time.perf_counter()
        try:
            outcome = self.camera(camera).handle(frame, self.budget.interval_s)
        except (FacestreamError, WireError, cv2.error) as exc:
            self.failed(Failure.DETECT_FAILED, f"camera {camera} seq {frame.seq}: {exc}")
            return
        cam = self.cameras[camera]
        out = outcome.faces
        # Match names this camera's frames in the order they left; a frame that does not come
        # after the last one sent (a replayed or duplicated seq) starts a new chain.
        last = cam.last_sent
        out.after = last if last is not None and last < out.seq else None
        if out.crops and not self._send(self.push, out, "detect->embed"):
            self._crops_not_sent(out)
            out = FaceCrops(
                out.camera_id, out.seq, out.ts_ns, out.stamps, out.frame_size, out.faces, after=out.after
            )
        if out.crops or self._send(self.to_match, out, "detect->match"):
            cam.last_sent = out.seq
            self.metrics.inc_out(camera)
        compute = time.perf_counter() - start
        self.budget.record(time.monotonic(), compute, behind)
        self.interval.labels(stage=self.name, worker=str(self.index)).set(self.budget.interval_s)
        self.modes.labels(
            stage=self.name, worker=str(self.index), camera=camera, mode=outcome.mode.value
        ).inc()
        self.metrics.observe(camera, compute, since_capture_s(frame))

    def _send(self, sock: zmq.Socket[Any], out: FaceCrops, hop: str) -> bool:
        try:
            sock.send_multipart(out.to_frames(), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.metrics.drop(out.camera_id, hop)
            return False
        if sock is self.push:
            self.downstream_gone = False
        return True

    def _crops_not_sent(self, out: FaceCrops) -> None:
        """Every embed worker was full: the faces go on without crops, their tracks ask again."""
        cam = self.cameras.get(out.camera_id)
        if cam is not None:
            cam.tracker.unsent(
                {f.track_id for f in out.faces if f.crop_index is not None and f.track_id is not None}
            )
        for face in out.faces:
            face.crop_index = None

    def forward_eos(self, eos: EndOfStream) -> None:
        """Downstream needs the end to finish cleanly, so it may wait briefly, unlike frames."""
        ended = self.cameras.pop(eos.camera_id, None)  # a camera that comes back starts new tracks
        if ended is not None:
            self.log.info("camera %s: %s", eos.camera_id, ended.report())
        if self.push.poll(0 if self.downstream_gone else EOS_WAIT_MS, zmq.POLLOUT):
            self.downstream_gone = False
            self.push.send_multipart(eos.to_frames(), flags=zmq.NOBLOCK, copy=False)
            self.metrics.inc_out(eos.camera_id)
            self.log.info("camera %s ended (%s) after seq %d", eos.camera_id, eos.reason, eos.seq)
        else:
            self.downstream_gone = True
            self.metrics.drop(eos.camera_id, "detect->embed")
            self.log.warning(
                "no embed worker took the end of camera %s within %d ms", eos.camera_id, EOS_WAIT_MS
            )
