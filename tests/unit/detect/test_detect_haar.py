from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bus.config import DetectConfig
from bus.errors import FacestreamError
from detect.base import Detector
from detect.haar import HaarDetector, default_cascade_path, weight_to_score
from detect.yunet import YuNetDetector
from tests.unit.detect.conftest import PHOTO_NAMES, iou, scaled


def test_cascade_ships_with_opencv(haar: HaarDetector) -> None:
    assert default_cascade_path().is_file()
    assert isinstance(haar, Detector) and haar.name == "haar"


# All 9 demo photos give exactly one face with histogram equalisation, minNeighbors=5 and the
# default score threshold (without equalisation ardern_2 and biden_1 gave extra boxes).
@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_one_face_per_photo(haar: HaarDetector, photos: dict[str, np.ndarray], name: str) -> None:
    faces = haar.detect(photos[name])
    assert len(faces) == 1, f"{name}: {[(f.box, f.score) for f in faces]}"
    face = faces[0]
    assert face.landmarks is None
    assert 0.7 <= face.score <= 1.0
    assert face.box[2] == face.box[3] and face.box[2] > 40


@pytest.mark.parametrize("name", PHOTO_NAMES)
def test_boxes_overlap_yunet(
    haar: HaarDetector, yunet: YuNetDetector, photos: dict[str, np.ndarray], name: str
) -> None:
    a, b = haar.detect(photos[name]), yunet.detect(photos[name])
    assert len(a) == 1 and len(b) == 1
    assert iou(a[0].box, b[0].box) > 0.4, (a[0].box, b[0].box)


def test_no_face_on_blank_or_noise(haar: HaarDetector, noise: np.ndarray) -> None:
    assert haar.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert haar.detect(np.full((480, 640, 3), 200, np.uint8)) == []
    assert haar.detect(noise) == []


@pytest.mark.parametrize("name", ["ardern_1", "obama_2", "sunak_1"])
def test_big_frames_are_downscaled_and_mapped_back(
    haar: HaarDetector, photos: dict[str, np.ndarray], name: str
) -> None:
    image = photos[name]
    big = cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    assert max(big.shape[:2]) > haar.cfg.max_side
    small_face, big_faces = haar.detect(image)[0], haar.detect(big)
    assert len(big_faces) == 1
    assert iou(scaled(small_face, 2.0), big_faces[0].box) > 0.7
    assert big_faces[0].box[2] / small_face.box[2] == pytest.approx(2.0, rel=0.15)


def test_score_squash() -> None:
    scores = [weight_to_score(w) for w in (-50.0, -1.0, 1.4, 2.85, 5.0, 11.0, 1e3)]
    assert all(0.0 < s <= 1.0 for s in scores[:-1]) and scores[-1] == 1.0
    assert scores == sorted(scores)
    assert weight_to_score(1.4) < 0.7 <= weight_to_score(2.9)  # measured: false positives < 1.5


def test_min_face_and_threshold(photos: dict[str, np.ndarray]) -> None:
    image = photos["obama_1"]
    side = HaarDetector().detect(image)[0].box[2]
    assert HaarDetector(DetectConfig(min_face=int(side * 1.3))).detect(image) == []
    assert HaarDetector(DetectConfig(score_threshold=1.0)).detect(image) == []


def test_input_validated(haar: HaarDetector) -> None:
    with pytest.raises(FacestreamError, match="detector input"):
        haar.detect(np.zeros((10, 10), np.uint8))


def test_missing_or_bad_cascade(tmp_path: Path) -> None:
    with pytest.raises(FacestreamError, match="not found"):
        HaarDetector(cascade_path=tmp_path / "none.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(FacestreamError, match="cannot load"):
        HaarDetector(cascade_path=bad)
