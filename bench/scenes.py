"""Scenes with known content for the detection budget: what each kind of scene costs, and what
skipping detections costs in box accuracy.

Each scene (deploy.scenes: an empty room, a person at a desk, one person walking, six faces
moving) is rendered once to an MP4 and detected on every frame in this process (YuNet, as the
pipeline's detect runs it): that per-frame detection is the reference the pipeline's boxes are
compared with (IoU >= 0.5, one to one, deploy.truth.boxes_agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from bus.geometry import Box
from bus.records import MatchResult
from deploy.assets import PHOTOS
from deploy.scenes import Cast, Scene, crowd_of_six, empty_scene, still_person, walking_person, write_scene
from deploy.truth import boxes_agree
from detect.base import Detector

SCENES = {"empty": empty_scene, "still": still_person, "walking": walking_person, "crowd6": crowd_of_six}
FPS = 15.0
FRAMES = 90  # 6 s of video, looped


@dataclass(frozen=True)
class BenchScene:
    name: str
    video: Path
    reference: list[list[Box]]  # per frame: the boxes a detection on that very frame finds


def prepare(
    workdir: Path, detector: Detector, names: tuple[str, ...] = tuple(SCENES)
) -> dict[str, BenchScene]:
    cast = Cast(PHOTOS)
    out = {}
    for name in names:
        scene: Scene = SCENES[name](cast, frames=FRAMES, fps=FPS)
        video = workdir / f"scene-{name}.mp4"
        write_scene(scene, video, detector)
        out[name] = BenchScene(name, video, _reference(video, detector))
    return out


def _reference(video: Path, detector: Detector) -> list[list[Box]]:
    """Every frame as capture decodes it, detected on its own."""
    cap = cv2.VideoCapture(str(video))
    boxes: list[list[Box]] = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            boxes.append([f.box for f in detector.detect(frame)])
    finally:
        cap.release()
    return boxes


def agreement(scene: BenchScene, results: list[tuple[int, MatchResult]]) -> dict[str, Any]:
    """Share of results whose boxes agree with the per-frame detection of their frame."""
    n = len(scene.reference)
    agree = sum(boxes_agree([f.box for f in r.faces], scene.reference[r.seq % n]) for _, r in results)
    tracked = sum(f.tracked for _, r in results for f in r.faces)
    faces = sum(len(r.faces) for _, r in results)
    return {
        "frames": len(results),
        "boxes_agree": round(agree / len(results), 4) if results else None,
        "tracked_face_share": round(tracked / faces, 4) if faces else None,
    }
