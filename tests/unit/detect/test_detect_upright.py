"""Faces rolled in the image plane: landmarks from an upright look keep same-person similarity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bus.records import Face
from deploy.assets import PHOTOS
from deploy.scenes import Actor, Cast, Key, Scene, iter_frames
from detect.upright import peak_angle, roll_deg, upright_landmarks
from detect.yunet import YuNetDetector
from embed.model import EmbeddingModel


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector()


@pytest.fixture(scope="module")
def sface() -> EmbeddingModel:
    return EmbeddingModel.load("sface")


def _enrolled(name: str, yunet: YuNetDetector, sface: EmbeddingModel) -> np.ndarray:
    image = cv2.imread(str(PHOTOS / f"{name}_1.jpg"))
    assert image is not None
    face = yunet.detect(image)[0]
    return sface.embed_faces(image, [face])[0]


@pytest.mark.parametrize("name", ["macron", "ardern", "obama"])
@pytest.mark.parametrize("roll", [-30.0, 30.0])
def test_a_rolled_face_matches_its_enrolled_photo_again(
    yunet: YuNetDetector, sface: EmbeddingModel, name: str, roll: float
) -> None:
    cast = Cast(PHOTOS)
    scene = Scene("rolled", 1, (Actor(*cast.person(name), (Key(0, 320, 240, 100, roll),)),))
    ((image, _truth),) = list(iter_frames(scene, yunet))
    face = max(yunet.detect(image), key=lambda f: f.box[2] * f.box[3])
    assert face.landmarks is not None
    reference = _enrolled(name, yunet, sface)
    before = float(reference @ sface.embed_faces(image, [face])[0])
    level = upright_landmarks(yunet, image, face)
    assert level is not None
    after = float(reference @ sface.embed_faces(image, [Face(face.box, face.score, level)])[0])
    assert abs(roll_deg(level) - (-roll)) < 12.0  # the eye line now follows the roll
    assert after >= 0.5 and after >= before - 0.02, (before, after)


def test_an_upright_face_keeps_its_similarity(yunet: YuNetDetector, sface: EmbeddingModel) -> None:
    image = cv2.imread(str(PHOTOS / "obama_2.jpg"))
    assert image is not None
    face = yunet.detect(image)[0]
    reference = _enrolled("obama", yunet, sface)
    level = upright_landmarks(yunet, image, face)
    assert level is not None
    before = float(reference @ sface.embed_faces(image, [face])[0])
    after = float(reference @ sface.embed_faces(image, [Face(face.box, face.score, level)])[0])
    assert after >= before - 0.05


def test_peak_angle_follows_the_trend_not_the_noisiest_look() -> None:
    angles = [-40.0, -20.0, 0.0, 20.0, 40.0]
    # An upright face whose best single look was at +20 degrees (measured: obama_3 at 60 px)
    assert abs(peak_angle(angles, [0.88, 0.929, 0.931, 0.939, 0.831])) < 10.0
    assert peak_angle(angles, [0.80, 0.85, 0.90, 0.93, 0.94]) >= 30.0  # rising to the edge
    assert peak_angle([0.0], [0.9]) == 0.0
