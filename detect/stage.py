"""The detect worker: newest frame per camera in, faces and their crops out to embed.

Frames that wait while a frame is being detected are stale: only the newest of each camera is
detected, the others are counted as drops (hop "capture->detect"). Output never blocks: when
every embed worker is full the result is dropped and counted (hop "detect->embed").

With detect.track, faces are tracked per camera (detect.tracker) and only a track's new or
clearly better faces (or one per reembed_interval_s) get a crop; the others travel with their
track_id and crop_index None, and match gives them the track's name.
"""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
import zmq

from bus.errors import FacestreamError, Failure, WireError
from bus.records import EndOfStream, Face, FaceCrops, Frame, Record
from bus.sockets import drain
from bus.stage import Stage, since_capture_s
from bus.topology import Endpoint, all_endpoints
from detect.base import Detector, big_enough
from detect.crops import crop_face
from detect.factory import make_detector
from detect.quality import face_quality
from detect.tracker import Observation, Tracker, thumbnail

EOS_WAIT_MS = 1000  # an end-of-stream may wait this long for room downstream; frames never wait


class DetectStage(Stage):
    name = "detect"

    def on_start(self) -> None:
        if self.config.detect.threads:
            cv2.setNumThreads(self.config.detect.threads)  # this process only; see DetectConfig
        self.detector: Detector = make_detector(self.config.detect)  # a bad model fails before sockets
        works = [e.connect for e in self.my_cameras()]
        outs = [e.connect for e in all_endpoints(self.config, "embed_in")]
        self.pull = self.socket(zmq.PULL, connect=works)
        self.push = self.socket(zmq.PUSH, connect=outs)
        self.inputs.append(self.pull)
        self.trackers: dict[str, Tracker] = {}
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

    def process_batch(self, records: list[Record], source: zmq.Socket[Any]) -> None:
        """Drop-oldest per camera, re-checked after every frame: what waits is never stale.

        While one frame is being detected, newer frames of other cameras keep arriving; taking
        them in before the next pick means each camera's frame is at most one detection old.
        """
        pending: dict[str, Frame] = {}
        self.take(records, pending)
        while pending:
            camera = min(pending, key=lambda c: pending[c].ts_ns)  # longest-waiting camera first
            self.handle_frame(pending.pop(camera))
            if pending:
                self.take(self.decode_all(drain(source)), pending)

    def take(self, records: list[Record], pending: dict[str, Frame]) -> None:
        waiting: dict[str, int] = {}
        for record in records:
            if isinstance(record, Frame):
                self.metrics.inc_in(record.camera_id)
                waiting[record.camera_id] = waiting.get(record.camera_id, 0) + 1
                if record.camera_id in pending:
                    self.metrics.drop(record.camera_id, "capture->detect")
                pending[record.camera_id] = record
            elif isinstance(record, EndOfStream):
                self.metrics.inc_in(record.camera_id)
                last = pending.pop(record.camera_id, None)
                if last is not None:  # the camera's last frame goes out before its end
                    self.handle_frame(last)
                self.forward_eos(record)
            else:
                self.reject(WireError("unexpected_kind", f"detect takes frames, got a {record.KIND!r}"))
        for camera, count in waiting.items():
            self.metrics.set_camera_depth(camera, count)

    def handle_frame(self, frame: Frame) -> None:
        camera = frame.camera_id
        start = time.perf_counter()
        try:
            out = self.find_faces(frame)
        except (FacestreamError, WireError, cv2.error) as exc:
            self.failed(Failure.DETECT_FAILED, f"camera {camera} seq {frame.seq}: {exc}")
            return
        compute = time.perf_counter() - start
        try:
            self.push.send_multipart(out.to_frames(), flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.metrics.drop(camera, "detect->embed")
        else:
            self.metrics.inc_out(camera)
        self.metrics.observe(camera, compute, since_capture_s(frame))

    def find_faces(self, frame: Frame) -> FaceCrops:
        cfg = self.config.detect
        faces = [f for f in self.detector.detect(frame.image) if big_enough(f, cfg.min_face)]
        for face in faces:
            face.quality = face_quality(frame.image, face)
        wanted = self.track(frame, faces) if cfg.track else [True] * len(faces)
        crops: list[np.ndarray] = []
        for face, embed in zip(faces, wanted, strict=True):
            if not embed:
                continue
            crop, origin = crop_face(frame.image, face, cfg.crop_margin)
            face.crop_index = len(crops)
            face.crop_origin = origin
            crops.append(crop)
        height, width = frame.image.shape[:2]
        return FaceCrops(
            camera_id=frame.camera_id,
            seq=frame.seq,
            ts_ns=frame.ts_ns,
            stamps={**frame.stamps, "detect": time.time_ns()},
            frame_size=(width, height),
            faces=faces,
            crops=crops,
        )

    def track(self, frame: Frame, faces: list[Face]) -> list[bool]:
        """Set each face's track_id; True for the faces that need a (new) embedding."""
        tracker = self.trackers.get(frame.camera_id)
        if tracker is None:
            cfg = self.config.detect
            tracker = Tracker(
                iou_min=cfg.track_iou,
                max_age_s=cfg.track_max_age_s,
                reembed_interval_s=cfg.reembed_interval_s,
                reembed_gain=cfg.reembed_gain,
                warmup=cfg.reembed_warmup,
                worker=self.index,
            )
            self.trackers[frame.camera_id] = tracker
        seen = [Observation(f, f.quality or 0.0, thumbnail(frame.image, f)) for f in faces]
        decisions = tracker.update(seen, frame.ts_ns / 1e9)
        for face, decision in zip(faces, decisions, strict=True):
            face.track_id = decision.track_id
        return [d.embed for d in decisions]

    def forward_eos(self, eos: EndOfStream) -> None:
        """Downstream needs the end to finish cleanly, so it may wait briefly, unlike frames."""
        self.trackers.pop(eos.camera_id, None)  # a camera that comes back starts new tracks
        if self.push.poll(EOS_WAIT_MS, zmq.POLLOUT):
            self.push.send_multipart(eos.to_frames(), flags=zmq.NOBLOCK, copy=False)
            self.metrics.inc_out(eos.camera_id)
            self.log.info("camera %s ended (%s) after seq %d", eos.camera_id, eos.reason, eos.seq)
        else:
            self.metrics.drop(eos.camera_id, "detect->embed")
            self.log.warning(
                "no embed worker took the end of camera %s within %d ms", eos.camera_id, EOS_WAIT_MS
            )
