"""Did anything change since the boxes of a camera were last measured, and where?

The approach of camera recorders: a small grey copy of each frame (about 0.25 ms at 640x480)
is compared with the copy of the last frame whose face boxes were measured (detected or
followed). Cells of a coarse grid where enough pixels differ are "moving"; a frame with none
changed nothing that a detection could see, so the camera's boxes stand as they are and the
frame costs no detection. Sensor noise and compression flicker stay under the pixel threshold
once the copy is blurred.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[float, float, float, float]

WIDTH = 160  # the grey copy's width; its height keeps the frame's aspect
CELL = 8  # grid cell side in the copy's pixels (4 % of its width)
PIXEL_DELTA = 14  # grey levels of change that count, after the blur
CELL_SHARE = 0.08  # share of a cell's pixels that must change for the cell to move
BODY_BELOW = 3.0  # a person's body reaches this many face heights below the face


@dataclass(frozen=True)
class Motion:
    cells: np.ndarray  # bool (rows, cols): moving cells
    cell_w: float  # a cell's size in frame pixels
    cell_h: float

    @property
    def any(self) -> bool:
        return bool(self.cells.any())

    @property
    def share(self) -> float:
        return float(self.cells.mean()) if self.cells.size else 0.0

    def outside(self, boxes: list[Box]) -> bool:
        """Whether a moving cell lies outside the people of these face boxes.

        Around each face, the region its person's head and body may move in: a face width to
        each side, half a face above, BODY_BELOW faces below. A walking person's shoulders do not
        call for a detection; someone new entering elsewhere does.
        """
        if not self.any:
            return False
        covered = np.zeros_like(self.cells)
        rows, cols = self.cells.shape
        for x, y, w, h in boxes:
            c0 = max(0, int((x - w) // self.cell_w))
            c1 = min(cols, int(np.ceil((x + 2 * w) / self.cell_w)))
            r0 = max(0, int((y - h / 2) // self.cell_h))
            r1 = min(rows, int(np.ceil((y + (1 + BODY_BELOW) * h) / self.cell_h)))
            covered[r0:r1, c0:c1] = True
        return bool((self.cells & ~covered).any())


def small_grey(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    height = max(CELL, round(h * WIDTH / w))
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(grey, (WIDTH, height), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (3, 3), 0)


def compare(reference: np.ndarray, current: np.ndarray, frame_size: tuple[int, int]) -> Motion:
    """Moving cells between two grey copies of one camera's frames (of one size)."""
    rows, cols = current.shape[0] // CELL, current.shape[1] // CELL
    changed = cv2.absdiff(reference, current)[: rows * CELL, : cols * CELL] > PIXEL_DELTA
    share = changed.reshape(rows, CELL, cols, CELL).mean(axis=(1, 3))
    w, h = frame_size
    return Motion(share >= CELL_SHARE, w / current.shape[1] * CELL, h / current.shape[0] * CELL)


class MotionGate:
    """One camera's reference copy: the last frame whose boxes were measured."""

    def __init__(self) -> None:
        self.reference: np.ndarray | None = None

    def check(self, image: np.ndarray) -> tuple[Motion | None, np.ndarray]:
        """(motion since the reference, None when there is no comparable reference; the copy)."""
        current = small_grey(image)
        if self.reference is None or self.reference.shape != current.shape:
            return None, current
        h, w = image.shape[:2]
        return compare(self.reference, current, (w, h)), current

    def measured(self, copy: np.ndarray) -> None:
        """The boxes of the frame of this copy were measured: it is the new reference."""
        self.reference = copy
