"""Draw recognised faces onto a copy of a frame: box, name + similarity, landmark dots.

A face detected in this very frame gets a full rectangle; a face whose box its track carried
into this frame (unchanged picture, or followed by template matching) gets corner brackets
only, so a viewer can tell a measured box from a carried one. Sizes follow the frame's short
side so that labels stay legible on 176x144 and on 1080p.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from bus.records import Face

UNKNOWN = "Unknown"
KNOWN_COLOR = (60, 200, 60)  # BGR green
UNKNOWN_COLOR = (40, 40, 230)  # red
PENDING_COLOR = (170, 170, 170)  # grey: detected, not identified yet
LANDMARK_COLOR = (255, 220, 0)  # cyan
FONT = cv2.FONT_HERSHEY_SIMPLEX


def face_color(face: Face) -> tuple[int, int, int]:
    if face.name is None:
        return PENDING_COLOR
    return UNKNOWN_COLOR if face.name == UNKNOWN else KNOWN_COLOR


def face_label(face: Face) -> str:
    name = face.name if face.name is not None else "?"
    if face.similarity is not None:
        return f"{name} {face.similarity:.2f}"
    return name


def _sizes(height: int, width: int) -> tuple[float, int, int, int]:
    """Font scale, text thickness, box thickness and dot radius for a frame size."""
    short = min(height, width)
    scale = min(max(short / 900.0, 0.3), 1.6)
    thick = max(1, round(scale * 1.8))
    box = max(1, round(short / 300))
    dot = max(1, round(short / 200))
    return scale, thick, box, dot


def draw_faces(
    frame: np.ndarray,
    faces: Sequence[Face],
    frame_size: tuple[int, int] | None = None,
    no_result: bool = False,
) -> np.ndarray:
    """Return a drawn copy of `frame`; `frame_size` (w, h) rescales boxes found on another size.

    `no_result` marks a frame shown without its result (it never arrived in time): a small grey
    tag, and no boxes, since another frame's boxes and names would not belong to this picture.
    """
    out = np.ascontiguousarray(frame).copy()
    h, w = out.shape[:2]
    sx = sy = 1.0
    if frame_size is not None and frame_size != (1, 1) and frame_size != (w, h):
        sx, sy = w / frame_size[0], h / frame_size[1]
    scale, thick, box_t, dot = _sizes(h, w)
    for face in faces:
        x, y, bw, bh = face.box
        x0, y0 = round(x * sx), round(y * sy)
        x1, y1 = round((x + bw) * sx), round((y + bh) * sy)
        color = face_color(face)
        if face.tracked:
            _brackets(out, (x0, y0, x1, y1), color, box_t)
        else:
            cv2.rectangle(out, (x0, y0), (x1, y1), color, box_t, cv2.LINE_8)
        if face.landmarks is not None:
            for lx, ly in face.landmarks:
                cv2.circle(out, (round(lx * sx), round(ly * sy)), dot, LANDMARK_COLOR, -1, cv2.LINE_AA)
        _label(out, face_label(face), (x0, y0, x1, y1), color, scale, thick)
    if no_result:
        _tag(out, "no result", scale)
    return out


def _brackets(
    img: np.ndarray, box: tuple[int, int, int, int], color: tuple[int, int, int], thick: int
) -> None:
    """The four corners of a box, each arm a quarter of the side."""
    x0, y0, x1, y1 = box
    arm_x, arm_y = max(2, (x1 - x0) // 4), max(2, (y1 - y0) // 4)
    for cx, cy, dx, dy in ((x0, y0, 1, 1), (x1, y0, -1, 1), (x0, y1, 1, -1), (x1, y1, -1, -1)):
        cv2.line(img, (cx, cy), (cx + dx * arm_x, cy), color, thick, cv2.LINE_8)
        cv2.line(img, (cx, cy), (cx, cy + dy * arm_y), color, thick, cv2.LINE_8)


def _label(
    img: np.ndarray,
    text: str,
    box: tuple[int, int, int, int],
    color: tuple[int, int, int],
    scale: float,
    thick: int,
) -> None:
    """A filled label above the box (inside it when the box touches the top), kept on screen."""
    h, w = img.shape[:2]
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    pad = max(1, thick)
    lw, lh = tw + 2 * pad, th + base + 2 * pad
    x0, y0, _, _ = box
    left = min(max(x0, 0), max(w - lw, 0))
    top = y0 - lh if y0 - lh >= 0 else max(y0, 0)
    top = min(top, max(h - lh, 0))
    cv2.rectangle(img, (left, top), (left + lw, top + lh), color, -1)
    ink = (0, 0, 0) if sum(color) > 450 else (255, 255, 255)
    cv2.putText(img, text, (left + pad, top + pad + th), FONT, scale, ink, thick, cv2.LINE_AA)


def _tag(img: np.ndarray, text: str, scale: float) -> None:
    w = img.shape[1]
    small = max(scale * 0.7, 0.25)
    (tw, th), base = cv2.getTextSize(text, FONT, small, 1)
    x, y = max(w - tw - 3, 0), th + 2
    cv2.rectangle(img, (x - 2, 0), (w, y + base), (60, 60, 60), -1)
    cv2.putText(img, text, (x, y), FONT, small, PENDING_COLOR, 1, cv2.LINE_AA)
