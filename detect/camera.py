"""One camera inside one detect worker: from a frame to its faces, spending detection only where needed.

The motion gate says what changed since the boxes were last measured, the planner picks the
frame's mode within the worker's budget, and the tracker turns detections into tracks (and
decides which faces to embed) or carries the tracks through the frames between detections.
Faces to embed are looked at upright first (detect.upright) and cut out with a margin.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from bus.config import DetectConfig
from bus.records import Face, FaceCrops, Frame
from detect.base import Detector, big_enough
from detect.crops import crop_face
from detect.motion import MotionGate
from detect.planner import Mode, Planner
from detect.quality import face_quality
from detect.tracker import Tracker, observe
from detect.upright import upright_landmarks


@dataclass
class Outcome:
    faces: FaceCrops
    mode: Mode


@dataclass
class CameraDetect:
    camera_id: str
    cfg: DetectConfig  # with the camera's own overrides
    detector: Detector
    worker: int = 0
    tracker: Tracker = field(init=False)
    planner: Planner = field(init=False)
    gate: MotionGate = field(default_factory=MotionGate)
    last_sent: int | None = None  # seq of this camera's last frame that left the worker
    modes: Counter[Mode] = field(default_factory=Counter)  # frames by what they cost
    dropped: int = 0  # frames of a backlog beyond MAX_WAITING, never looked at

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.tracker = Tracker(
            iou_min=cfg.track_iou,
            max_age_s=cfg.track_max_age_s,
            reembed_interval_s=cfg.reembed_interval_s,
            reembed_gain=cfg.reembed_gain,
            warmup=cfg.reembed_warmup,
            worker=self.worker,
        )
        self.planner = Planner(refresh_s=cfg.refresh_s, motion_gating=cfg.motion and cfg.track)

    def handle(self, frame: Frame, interval_s: float) -> Outcome:
        """The frame's faces: detected in it, or carried by their tracks (marked `tracked`)."""
        now = frame.ts_ns / 1e9
        image = frame.image
        motion, copy = self.gate.check(image) if self.planner.motion_gating else (None, None)
        interval = max(interval_s, self.cfg.detect_interval_s)
        mode = self.planner.plan(now, motion, self.tracker.boxes, interval) if self.cfg.track else Mode.FULL
        lost = 0
        if mode is Mode.FOLLOW:
            faces, lost = self.tracker.follow(image, now)
            wanted = [False] * len(faces)
            if lost and self.planner.urgent_due(now, interval):
                mode, lost = Mode.FULL, 0  # look for the lost face (or who replaced it) in this frame
        if mode is Mode.FULL:
            faces, wanted = self._detect(image, now)
        elif mode is Mode.STILL:
            faces = self.tracker.hold(now)
            wanted = [False] * len(faces)
        if copy is not None and mode is not Mode.STILL:
            self.gate.measured(copy)
        # A face that following lost, or one that a detection missed and only following found,
        # asks for a detection (as soon as the budget allows one).
        self.planner.done(mode, now, lost_a_face=lost > 0 or (mode is Mode.FULL and self.tracker.unconfirmed))
        self.modes[mode] += 1
        return Outcome(self._crops(frame, faces, wanted), mode)

    def _detect(self, image: np.ndarray, now: float) -> tuple[list[Face], list[bool]]:
        faces = [f for f in self.detector.detect(image) if big_enough(f, self.cfg.min_face)]
        for face in faces:
            face.quality = face_quality(image, face)
        if not self.cfg.track:
            return faces, [True] * len(faces)
        decisions = self.tracker.update([observe(image, f) for f in faces], now)
        for face, decision in zip(faces, decisions, strict=True):
            face.track_id = decision.track_id
        # Tracks the detector missed in this frame (a blink, a tilt) may still be followed.
        found = {d.track_id for d in decisions}
        followed, _ = self.tracker.follow(image, now, skip=found, avoid=[f.box for f in faces], bridge=True)
        return faces + followed, [d.embed for d in decisions] + [False] * len(followed)

    def _crops(self, frame: Frame, faces: list[Face], wanted: list[bool]) -> FaceCrops:
        cfg = self.cfg
        crops: list[np.ndarray] = []
        for face, embed in zip(faces, wanted, strict=True):
            if not embed:
                continue
            if cfg.upright and face.landmarks is not None:
                level = upright_landmarks(self.detector, frame.image, face)
                if level is not None:
                    face.landmarks = level
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

    def report(self) -> str:
        """What this camera's frames cost, for the log at its end."""
        m = self.modes
        return (
            f"{sum(m.values())} frames: {m[Mode.FULL]} detected, {m[Mode.FOLLOW]} followed, "
            f"{m[Mode.STILL]} still; {self.dropped} dropped behind"
        )
