"""Drawing on real frames: pixels change where the face is, colours say known/unknown/pending."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bus.records import Face
from overlay.draw import (
    KNOWN_COLOR,
    LANDMARK_COLOR,
    PENDING_COLOR,
    UNKNOWN_COLOR,
    draw_faces,
    face_label,
)

BOX = (61.0, 34.0, 60.0, 60.0)  # OpenCV's Haar cascade finds the face here in frame 0
LANDMARKS = np.array([[78, 58], [104, 58], [91, 70], [80, 82], [102, 82]], np.float32)


@pytest.fixture(scope="module")
def frame(clip: Path) -> np.ndarray:
    ok, image = cv2.VideoCapture(str(clip)).read()
    assert ok
    return image


def _face(name: str | None, similarity: float | None = 0.81) -> Face:
    return Face(box=BOX, score=0.95, landmarks=LANDMARKS, name=name, similarity=similarity, track_id=1)


def _near(img: np.ndarray, x: int, y: int, color: tuple[int, int, int], tol: int = 12) -> bool:
    return bool(np.all(np.abs(img[y, x].astype(int) - np.array(color)) <= tol))


def test_draws_inside_the_box_on_a_copy(frame: np.ndarray) -> None:
    before = frame.copy()
    out = draw_faces(frame, [_face("obama")])
    assert np.array_equal(frame, before)  # the input frame is untouched
    x, y, w, h = (int(v) for v in BOX)
    inside = (out[y : y + h + 1, x : x + w + 1] != before[y : y + h + 1, x : x + w + 1]).any(axis=2)
    assert inside.sum() > 2 * (w + h)  # the box outline plus the landmark dots
    assert np.array_equal(out[130:, :40], before[130:, :40])  # far from the face: unchanged


@pytest.mark.parametrize(
    ("name", "color"),
    [("obama", KNOWN_COLOR), ("Unknown", UNKNOWN_COLOR), (None, PENDING_COLOR)],
)
def test_box_colour_tells_the_identity_state(
    frame: np.ndarray, name: str | None, color: tuple[int, int, int]
) -> None:
    out = draw_faces(frame, [_face(name)])
    x, y, w, h = (int(v) for v in BOX)
    # right edge of the box, below the label: the outline's own colour
    assert _near(out, x + w, y + h // 2, color)


def test_landmarks_are_dotted(frame: np.ndarray) -> None:
    out = draw_faces(frame, [_face("obama")])
    for lx, ly in LANDMARKS.astype(int):
        assert _near(out, int(lx), int(ly), LANDMARK_COLOR, tol=40)


def test_labels() -> None:
    assert face_label(_face("obama", 0.8123)) == "obama 0.81"
    assert face_label(_face("Unknown", 0.2)) == "Unknown 0.20"
    assert face_label(_face(None, None)) == "?"


def _label_height(out: np.ndarray, before: np.ndarray, x: int, y0: int, color: tuple[int, int, int]) -> int:
    """Rows above the box top, at column x, filled with the label colour (its background band)."""
    rows = 0
    for y in range(y0 - 1, -1, -1):
        if np.abs(out[y, x].astype(int) - np.array(color)).max() <= 12 and not np.array_equal(
            out[y, x], before[y, x]
        ):
            rows += 1
        elif rows:
            break
    return rows


def test_text_scales_with_the_frame(frame: np.ndarray) -> None:
    small_out = draw_faces(frame, [_face("obama")])
    big = cv2.resize(frame, (1920, 1080))
    scale = 1080 / 144
    big_face = Face(box=tuple(v * scale for v in BOX), score=0.9, name="obama", similarity=0.8)  # type: ignore[arg-type]
    big_out = draw_faces(big, [big_face])
    small_h = _label_height(small_out, frame, int(BOX[0]), int(BOX[1]), KNOWN_COLOR)
    big_h = _label_height(big_out, big, int(BOX[0] * scale) + 3, int(BOX[1] * scale), KNOWN_COLOR)
    assert small_h >= 8  # legible on 176x144
    assert big_h >= 3 * small_h
    assert big_h < 100


def test_labels_stay_inside_the_frame(frame: np.ndarray) -> None:
    corner = Face(box=(150.0, 0.0, 26.0, 30.0), score=0.9, name="a-rather-long-name", similarity=0.9)
    out = draw_faces(frame, [corner])
    changed = (out != frame).any(axis=2)
    assert changed[:5, 100:].any()  # the label was moved left/down into view, not clipped away


def test_boxes_found_on_another_size_are_rescaled(frame: np.ndarray) -> None:
    face = Face(box=tuple(v * 2 for v in BOX), score=0.9, name="obama", similarity=0.8)  # type: ignore[arg-type]
    direct = draw_faces(frame, [_face("obama", 0.8)], frame_size=(176, 144))
    scaled = draw_faces(frame, [face], frame_size=(352, 288))
    x, y, w, h = (int(v) for v in BOX)
    assert _near(scaled, x + w, y + h // 2, KNOWN_COLOR)
    assert _near(direct, x + w, y + h // 2, KNOWN_COLOR)


def test_frames_without_a_result_are_tagged(frame: np.ndarray) -> None:
    fresh = draw_faces(frame, [])
    bare = draw_faces(frame, [], no_result=True)
    assert np.array_equal(fresh, frame)
    assert not np.array_equal(bare[:12, -60:], frame[:12, -60:])


def test_tracked_boxes_are_drawn_as_corners_only(frame: np.ndarray) -> None:
    detected = draw_faces(frame, [_face("obama", 0.8)])
    carried = Face(box=BOX, score=0.9, name="obama", similarity=0.8, tracked=True)
    tracked = draw_faces(frame, [carried])
    x, y, w, h = (int(v) for v in BOX)
    # both show the corners; only the detected box has the middle of its right side
    assert _near(tracked, x + w, y + h - 1, KNOWN_COLOR) and _near(detected, x + w, y + h - 1, KNOWN_COLOR)
    assert _near(detected, x + w, y + h // 2, KNOWN_COLOR)
    assert not _near(tracked, x + w, y + h // 2, KNOWN_COLOR)
