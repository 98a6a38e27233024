"""The face of a sighting as a small JPEG: the box with a margin, scaled down, cut at the edges."""

from __future__ import annotations

import cv2
import numpy as np

from bus.geometry import Box

MARGIN = 0.35  # of the box side, on each side: forehead, chin and ears stay in
JPEG_QUALITY = 88


def face_region(image: np.ndarray, box: Box, scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """A copy of the region around a box (given in a frame scaled by `scale` from this image)."""
    sx, sy = scale
    x, y, w, h = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
    pad = max(w, h) * MARGIN
    rows, cols = image.shape[:2]
    top, bottom = int(max(0, y - pad)), int(min(rows, y + h + pad))
    left, right = int(max(0, x - pad)), int(min(cols, x + w + pad))
    if bottom <= top or right <= left:
        return np.zeros((0, 0, 3), np.uint8)
    return image[top:bottom, left:right].copy()


def snapshot_jpeg(region: np.ndarray, side: int) -> bytes | None:
    """JPEG of a region whose longer side is at most `side` pixels; None for an empty region."""
    if region.size == 0:
        return None
    longest = max(region.shape[:2])
    if longest > side:
        f = side / longest
        size = (max(1, round(region.shape[1] * f)), max(1, round(region.shape[0] * f)))
        region = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", region, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return buf.tobytes() if ok else None
