"""What every face detector promises, so the stage and the tools can swap backends freely.

Landmark order (all backends): image-left eye, image-right eye, nose tip, image-left mouth
corner, image-right mouth corner, in frame pixels: the order SFace's 5-point alignment expects.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from bus.errors import FacestreamError
from bus.records import Face


@runtime_checkable
class Detector(Protocol):
    name: str

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        """Faces of one BGR uint8 image, best score first; boxes and landmarks in its pixels."""
        ...


def check_image(image_bgr: object) -> np.ndarray:
    """Refuse anything but a uint8 HxWx3 array with a message that says what arrived."""
    if not isinstance(image_bgr, np.ndarray):
        raise FacestreamError(f"detector input must be a numpy array, got {type(image_bgr).__name__}")
    if image_bgr.dtype != np.uint8:
        raise FacestreamError(f"detector input must be uint8 BGR, got dtype {image_bgr.dtype}")
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.shape[0] < 1 or image_bgr.shape[1] < 1:
        raise FacestreamError(f"detector input must be an HxWx3 BGR image, got shape {image_bgr.shape}")
    return np.ascontiguousarray(image_bgr)


def fit_scale(width: int, height: int, max_side: int) -> float:
    """Factor that brings the longer side down to max_side (1.0 when it already fits)."""
    longest = max(width, height)
    return 1.0 if longest <= max_side else max_side / longest


def big_enough(face: Face, min_face: int) -> bool:
    """min_face bounds the shorter box side (YuNet boxes are taller than wide)."""
    return min(face.box[2], face.box[3]) >= min_face


def by_score(faces: list[Face]) -> list[Face]:
    return sorted(faces, key=lambda f: f.score, reverse=True)
