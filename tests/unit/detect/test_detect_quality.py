"""Face quality on real photos: blur, small size and a turned head all score lower."""

from __future__ import annotations

import cv2
import numpy as np

from bus.records import Face
from detect.quality import face_quality, frontal_score, sharpness_score, size_score
from detect.yunet import YuNetDetector


def test_blur_and_size_lower_the_score(photos: dict[str, np.ndarray], yunet: YuNetDetector) -> None:
    for name in ("obama_3", "ardern_1", "macron_2"):
        image = photos[name]
        face = yunet.detect(image)[0]
        blurred = cv2.GaussianBlur(image, (0, 0), 2.5)
        assert sharpness_score(blurred, face) < 0.7 * sharpness_score(image, face), name
        assert face_quality(blurred, face) < face_quality(image, face)
        small = cv2.resize(image, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
        small_face = yunet.detect(small)[0]
        assert size_score(small_face) < size_score(face), name
        assert 0.0 <= face_quality(small, small_face) <= 1.0


def test_frontality_from_landmarks(photos: dict[str, np.ndarray], yunet: YuNetDetector) -> None:
    face = yunet.detect(photos["sunak_1"])[0]
    assert face.landmarks is not None
    assert frontal_score(face) > 0.7  # a passport-like photo
    lm = face.landmarks.copy()
    lm[2] = lm[0] + 0.1 * (lm[1] - lm[0])  # nose tip next to one eye: a head turned far aside
    turned = Face(box=face.box, score=face.score, landmarks=lm)
    assert frontal_score(turned) < 0.3
    assert frontal_score(Face(box=face.box, score=0.9)) == 0.5  # no landmarks (Haar): unknown
