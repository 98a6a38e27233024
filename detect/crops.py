"""Cut a face out of its frame with room around it, so embed can align without the full frame."""

from __future__ import annotations

import math

import numpy as np

from bus.records import Face


def crop_bounds(face: Face, margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), end exclusive: a square around the box, grown by margin on each side.

    It also covers every landmark (alignment needs them all), then is clipped to the frame;
    it is never empty.
    """
    x, y, w, h = face.box
    side = max(w, h) * (1.0 + 2.0 * margin)
    cx, cy = x + w / 2.0, y + h / 2.0
    left, right = cx - side / 2.0, cx + side / 2.0
    top, bottom = cy - side / 2.0, cy + side / 2.0
    if face.landmarks is not None:
        lm = np.asarray(face.landmarks, dtype=np.float64)
        left, top = min(left, float(lm[:, 0].min())), min(top, float(lm[:, 1].min()))
        # +1: a landmark at x must satisfy x - x0 <= crop_width - 1 (pixel centres are integers)
        right, bottom = max(right, float(lm[:, 0].max()) + 1), max(bottom, float(lm[:, 1].max()) + 1)
    x0 = min(max(math.floor(left), 0), width - 1)
    y0 = min(max(math.floor(top), 0), height - 1)
    x1 = max(min(math.ceil(right), width), x0 + 1)
    y1 = max(min(math.ceil(bottom), height), y0 + 1)
    return x0, y0, x1, y1


def crop_face(image: np.ndarray, face: Face, margin: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The face's crop as a C-contiguous copy (safe to send with copy=False) and its origin."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = crop_bounds(face, margin, width, height)
    crop = np.array(image[y0:y1, x0:x1], order="C", copy=True)
    return crop, (x0, y0)
