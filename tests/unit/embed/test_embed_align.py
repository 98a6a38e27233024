"""Alignment reproduces cv2.FaceRecognizerSF.alignCrop and crops boxes sensibly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bus.errors import FacestreamError
from embed.align import REFERENCE_112, align_5point, align_box, reference_points, similarity_transform

from .conftest import Detection


def test_align_5point_equals_opencv_align_crop(
    recognizer: cv2.FaceRecognizerSF, detections: dict[str, Detection]
) -> None:
    worst = 0
    for det in detections.values():
        want = recognizer.alignCrop(det.image, det.row)
        got = align_5point(det.image, det.row[4:14].reshape(5, 2))
        assert got.shape == want.shape == (112, 112, 3) and got.dtype == np.uint8
        worst = max(worst, int(np.abs(got.astype(np.int16) - want.astype(np.int16)).max()))
    print(f"align_5point vs cv2 alignCrop: max pixel diff {worst}")
    assert worst <= 1


def test_transform_recovers_a_known_similarity() -> None:
    angle, scale, shift = np.deg2rad(17.0), 1.7, np.array([-12.0, 30.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ((REFERENCE_112.astype(np.float64) - shift) @ np.linalg.inv(rot).T).astype(np.float32)
    _, mean = reference_points((112, 112))
    m = similarity_transform(src, REFERENCE_112, REFERENCE_112.mean(axis=0))
    np.testing.assert_allclose(m[:, :2], rot, atol=1e-4)
    np.testing.assert_allclose(m[:, 2], shift, atol=1e-3)
    assert np.abs(mean - REFERENCE_112.mean(axis=0)).max() < 1e-3  # OpenCV's rounded template mean


def test_other_sizes_scale_the_template(detections: dict[str, Detection]) -> None:
    det = detections["obama_1"]
    lm = det.row[4:14].reshape(5, 2)
    m112 = similarity_transform(lm, *reference_points((112, 112)))
    m224 = similarity_transform(lm, *reference_points((224, 224)))
    np.testing.assert_allclose(m224, 2.0 * m112, rtol=1e-5, atol=1e-4)
    big = align_5point(det.image, lm, (224, 224))
    small = align_5point(det.image, lm, (112, 112))
    assert big.shape == (224, 224, 3)
    # The same face at twice the size: shrinking it back lands close to the 112 crop.
    shrunk = cv2.resize(big, (112, 112), interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(float) - small).mean() < 6.0


def test_align_5point_rejects_bad_landmarks(detections: dict[str, Detection]) -> None:
    image = detections["biden_1"].image
    with pytest.raises(FacestreamError, match="landmarks"):
        align_5point(image, np.zeros((4, 2), np.float32))
    with pytest.raises(FacestreamError, match="uint8"):
        align_5point(image.astype(np.float32), np.zeros((5, 2), np.float32))


def test_align_box_crops_the_box_region() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    # A square box inside the image, scaled by an integer factor: same as slicing + resizing.
    got = align_box(image, (100, 50, 224, 224), (112, 112))
    want = cv2.resize(image[50:274, 100:324], (112, 112), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(got, want)
    # A tall box: the square crop keeps the face's aspect ratio (centred, widened).
    tall = align_box(image, (150, 20, 50, 200), (100, 100))
    np.testing.assert_array_equal(
        tall, cv2.resize(image[20:220, 75:275], (100, 100), interpolation=cv2.INTER_AREA)
    )


def test_align_box_pads_outside_and_upscales_small_faces() -> None:
    image = np.full((100, 100, 3), 200, np.uint8)
    corner = align_box(image, (-40, -40, 80, 80), (112, 112))
    assert corner.shape == (112, 112, 3)
    assert corner[:40, :40].max() == 0 and corner[-30:, -30:].min() == 200  # black outside the image
    up = align_box(image, (10, 10, 20, 20), (112, 96))
    assert up.shape == (96, 112, 3) and int(up.min()) == 200
    with pytest.raises(FacestreamError, match="positive size"):
        align_box(image, (10, 10, 0, 20))
