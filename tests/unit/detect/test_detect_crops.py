from __future__ import annotations

import numpy as np
import pytest

from bus.records import Face
from detect.crops import crop_face
from detect.yunet import YuNetDetector
from tests.unit.detect.conftest import PHOTO_NAMES


def _contains(face: Face, crop: np.ndarray, origin: tuple[int, int]) -> bool:
    assert face.landmarks is not None
    local = face.landmarks - np.array(origin, np.float32)
    h, w = crop.shape[:2]
    return bool((local >= 0).all() and (local[:, 0] <= w - 1).all() and (local[:, 1] <= h - 1).all())


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_crop_holds_face_and_landmarks(
    yunet: YuNetDetector, photos: dict[str, np.ndarray], name: str
) -> None:
    image = photos[name]
    face = yunet.detect(image)[0]
    crop, (x0, y0) = crop_face(image, face, 0.3)
    assert crop.flags.c_contiguous and crop.flags.owndata and crop.dtype == np.uint8
    assert np.shares_memory(crop, image) is False
    h, w = crop.shape[:2]
    assert x0 >= 0 and y0 >= 0 and x0 + w <= image.shape[1] and y0 + h <= image.shape[0]
    assert np.array_equal(crop, image[y0 : y0 + h, x0 : x0 + w])
    assert _contains(face, crop, (x0, y0))
    bx, by, bw, bh = face.box
    # The whole box (clipped to the image) is inside the crop.
    assert x0 <= max(bx, 0) and y0 <= max(by, 0)
    assert x0 + w >= min(bx + bw, image.shape[1]) - 1 and y0 + h >= min(by + bh, image.shape[0]) - 1


def test_margin_grows_square_around_box() -> None:
    image = np.zeros((400, 400, 3), np.uint8)
    face = Face(box=(150.0, 140.0, 80.0, 100.0), score=0.9)
    crop, origin = crop_face(image, face, 0.25)
    # side = 100 * 1.5 = 150 around the centre (190, 190)
    assert origin == (115, 115) and crop.shape == (150, 150, 3)
    crop0, origin0 = crop_face(image, face, 0.0)
    assert origin0 == (140, 140) and crop0.shape == (100, 100, 3)


def test_clipped_at_borders_and_landmarks_included() -> None:
    image = np.arange(120 * 160 * 3, dtype=np.uint32).astype(np.uint8).reshape(120, 160, 3)
    lm = np.array([[2, 5], [30, 4], [15, 20], [5, 30], [28, 31]], np.float32)
    face = Face(box=(-10.0, -8.0, 40.0, 45.0), score=0.8, landmarks=lm)
    crop, origin = crop_face(image, face, 0.3)
    assert origin == (0, 0) and crop.shape[0] <= 120 and crop.shape[1] <= 160
    assert _contains(face, crop, origin)
    # Landmarks outside the box (a wide smile, a tilted head) still end up inside the crop.
    lm_far = np.array([[100, 50], [130, 50], [115, 60], [100, 70], [150, 80]], np.float32)
    face = Face(box=(100.0, 40.0, 20.0, 20.0), score=0.8, landmarks=lm_far)
    crop, origin = crop_face(image, face, 0.0)
    assert _contains(face, crop, origin)
    assert origin[0] + crop.shape[1] <= 160
    # A box that lies outside the frame still gives a non-empty, in-bounds crop.
    crop, origin = crop_face(image, Face(box=(500.0, 500.0, 10.0, 10.0), score=0.5), 0.3)
    assert crop.size > 0 and origin[0] < 160 and origin[1] < 120
