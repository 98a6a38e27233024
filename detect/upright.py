"""Landmarks that follow a face's roll: look at the face again, turned upright, before embedding it.

YuNet's landmarks follow a face rolled in the image plane only part of the way (30 degrees shows
as 10-20, and as nothing on faces of 60 px), so the 5-point alignment leaves the face tilted and
same-person similarity falls from ~0.7 to 0.1-0.4 at 30 degrees (demo photos). A face about to
be embedded is therefore detected again on a small patch around it, rotated by a few candidate
angles; the detector scores the most upright view highest, so one more look at the angle where
the scores peak gives landmarks that, mapped back into the frame, drive the alignment.

It costs six detections on a 128x128 patch (about 1.7 ms each with YuNet on one core) per
face *embedded*, which tracking keeps rare; faces only carried along their track cost nothing.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from bus.records import Face
from detect.base import Detector

CANDIDATES = (-40.0, -20.0, 0.0, 20.0, 40.0)  # degrees, counter-clockwise as cv2 rotates
PATCH = 128  # side of the patch the face is looked at on
CONTEXT = 1.8  # patch side over face side: room for the face rotated by up to 45 degrees


def roll_deg(landmarks: np.ndarray) -> float:
    """The angle of the eye line, degrees (positive: the image-right eye is lower)."""
    (x0, y0), (x1, y1) = landmarks[0], landmarks[1]
    return math.degrees(math.atan2(float(y1 - y0), float(x1 - x0)))


def _look(
    detector: Detector, image: np.ndarray, centre: tuple[float, float], side: float, angle: float
) -> tuple[float, np.ndarray, float] | None:
    """(score, landmarks in frame pixels, roll left in the patch) of the face nearest the centre."""
    cx, cy = centre
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, PATCH / side)
    matrix[:, 2] += np.array([PATCH / 2.0 - cx, PATCH / 2.0 - cy])
    patch = cv2.warpAffine(
        image, matrix, (PATCH, PATCH), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    found = [f for f in detector.detect(patch) if f.landmarks is not None]
    if not found:
        return None

    def off_centre(f: Face) -> float:
        x, y, w, h = f.box
        return math.hypot(x + w / 2.0 - PATCH / 2.0, y + h / 2.0 - PATCH / 2.0)

    best = min(found, key=off_centre)
    if off_centre(best) > PATCH / 4.0:
        return None  # another face, not this one
    assert best.landmarks is not None
    back = cv2.invertAffineTransform(matrix)
    points = best.landmarks @ back[:, :2].T + back[:, 2]
    return best.score, points.astype(np.float32), roll_deg(best.landmarks)


def peak_angle(angles: list[float], scores: list[float]) -> float:
    """Where the detector's score peaks: a least-squares parabola through every look's score.

    A single best look is noisy (scores differ by ~0.01 between neighbouring angles); the trend
    over all of them is not. Falls back to the best look when the scores do not curve downwards.
    """
    best = angles[int(np.argmax(scores))]
    if len(angles) < 3:
        return best
    a, b, _ = np.polyfit(np.asarray(angles), np.asarray(scores), 2)
    if a >= 0:
        return best
    return float(np.clip(-b / (2 * a), min(angles), max(angles)))


def upright_landmarks(detector: Detector, image: np.ndarray, face: Face) -> np.ndarray | None:
    """Better landmarks for a face that may be rolled; None when no look found it again."""
    x, y, w, h = face.box
    side = max(w, h) * CONTEXT
    if side < 1.0:
        return None
    centre = (x + w / 2.0, y + h / 2.0)
    angles, scores = [], []
    for angle in CANDIDATES:
        seen = _look(detector, image, centre, side, angle)
        if seen is not None:
            angles.append(angle)
            scores.append(seen[0])
    if not angles:
        return None
    final = _look(detector, image, centre, side, peak_angle(angles, scores))
    return None if final is None else final[1]
