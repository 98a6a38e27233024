"""Follow a tracked face between detections by template matching: a fraction of a millisecond a face.

At each detection a track keeps a small grey template of its face. On the frames in between,
the face is looked for in a window around where its motion says it should be (normalised
cross-correlation, cv2.matchTemplate): the best match moves the box, and its score doubles as
a look check. A score below FOLLOW_MIN means the face there no longer looks like the face that
was detected (it left, turned away, or someone else stands there): the track is not followed,
not shown in that frame, and a detection is asked for at the next one.

The box keeps its size; detections correct size and drift. Boxes moved this way are marked
`tracked` on the wire, so a viewer can tell them from detected ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[float, float, float, float]

TEMPLATE = 24  # template side, pixels: the face box (its inner part) resampled to this
INNER = 0.8  # the central part of the box: less background, which does not move with the face
SEARCH = 0.5  # the window reaches this fraction of the box side beyond the predicted box, each way
# Same face between frames (demo photos shifted, scaled by 8-12 %): >= 0.50 at 24 px with a
# shift search, mostly >= 0.8; different people at one place: <= 0.53. Frames in between
# detections are close in time, so the face changes far less than in those tests.
FOLLOW_MIN = 0.6


@dataclass(frozen=True)
class Template:
    patch: np.ndarray  # TEMPLATE x TEMPLATE float32 grey
    box: Box  # the box it was cut from


def _warp(image: np.ndarray, x0: float, y0: float, scale: float, size: tuple[int, int]) -> np.ndarray:
    """The region from (x0, y0), scaled by `scale`, as a float32 grey image of `size` (w, h)."""
    matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]], np.float32)
    flags = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    region = cv2.warpAffine(image, matrix, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    if region.ndim == 3:
        region = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY)
    return region.astype(np.float32)


def _inner(box: Box) -> tuple[float, float, float]:
    """(x0, y0, side) of the box's central square."""
    x, y, w, h = box
    side = max(1.0, INNER * min(w, h))
    return x + (w - side) / 2.0, y + (h - side) / 2.0, side


def make_template(image: np.ndarray, box: Box) -> Template:
    x0, y0, side = _inner(box)
    scale = TEMPLATE / side
    return Template(_warp(image, x0, y0, scale, (TEMPLATE, TEMPLATE)), box)


@dataclass(frozen=True)
class Found:
    box: Box
    score: float


def follow(image: np.ndarray, template: Template, predicted: Box) -> Found:
    """The best match of the template in a window around the predicted box, and its score."""
    x0, y0, side = _inner(predicted)
    scale = TEMPLATE / side
    reach = SEARCH * max(predicted[2], predicted[3])
    window = TEMPLATE + 2 * max(2, round(reach * scale))
    wx0 = x0 + side / 2.0 - (window / 2.0) / scale
    wy0 = y0 + side / 2.0 - (window / 2.0) / scale
    region = _warp(image, wx0, wy0, scale, (window, window))
    scores = cv2.matchTemplate(region, template.patch, cv2.TM_CCOEFF_NORMED)
    _, best, _, (mx, my) = cv2.minMaxLoc(scores)
    # The template's top-left sits at (mx, my) in the window: back to frame pixels.
    dx = (wx0 + mx / scale) - x0
    dy = (wy0 + my / scale) - y0
    x, y, w, h = predicted
    return Found((x + dx, y + dy, w, h), float(best) if np.isfinite(best) else -1.0)
