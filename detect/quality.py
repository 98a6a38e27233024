"""How useful a face is for recognition: size x sharpness x frontality, each in [0, 1].

A track is embedded again only when a clearly better face of it appears, so the score must be
cheap (one small grey patch per face) and comparable between the frames of one track.
"""

from __future__ import annotations

import cv2
import numpy as np

from bus.records import Face

FULL_SIZE = 112  # SFace's input side: faces at least this big lose nothing to scaling
PATCH = 64  # faces are resampled to this before measuring sharpness, so sizes compare
# Laplacian variance of a 64x64 face patch that scores 0.5: measured on the demo photos
# (600-3200 sharp, 20-350 after a 2 px Gaussian blur) and carphone (200-320 native, 170-270 upscaled).
SHARPNESS_HALF = 300.0
UNKNOWN_POSE = 0.5  # frontality when the detector gives no landmarks (Haar)


def face_patch(image: np.ndarray, face: Face, side: int) -> np.ndarray:
    """The face box resampled to side x side grey pixels (area-averaged when shrinking)."""
    x, y, w, h = face.box
    w, h = max(w, 1.0), max(h, 1.0)
    warp = np.array([[side / w, 0.0, -x * side / w], [0.0, side / h, -y * side / h]], np.float32)
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    flags = cv2.INTER_AREA if min(w, h) > side else cv2.INTER_LINEAR
    return cv2.warpAffine(grey, warp, (side, side), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def size_score(face: Face) -> float:
    return float(min(1.0, min(face.box[2], face.box[3]) / FULL_SIZE))


def sharpness_score(image: np.ndarray, face: Face) -> float:
    """Variance of the Laplacian (focus measure) mapped to [0, 1)."""
    variance = float(cv2.Laplacian(face_patch(image, face, PATCH), cv2.CV_32F).var())
    return variance / (variance + SHARPNESS_HALF)


def frontal_score(face: Face) -> float:
    """1 when the nose tip sits midway between the eyes along the eye line, 0 at an eye (profile)."""
    if face.landmarks is None:
        return UNKNOWN_POSE
    lm = np.asarray(face.landmarks, np.float64)
    eye_a, eye_b, nose = lm[0], lm[1], lm[2]
    axis = eye_b - eye_a
    span = float(axis @ axis)
    if span <= 1e-9:
        return 0.0
    t = float((nose - eye_a) @ axis) / span  # 0.5 for a frontal face
    return float(min(1.0, max(0.0, 1.0 - 2.0 * abs(t - 0.5))))


def face_quality(image: np.ndarray, face: Face) -> float:
    return round(size_score(face) * sharpness_score(image, face) * frontal_score(face), 4)
