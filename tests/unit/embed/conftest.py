"""Shared fixtures: the folded SFace model (built once per session) and real detections."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from bus.records import Face
from embed.model import EmbeddingModel
from embed.zoo import ensure_sface, sface_source

PHOTOS = Path(__file__).resolve().parents[3] / "deploy" / "demo_assets" / "photos"
NAMES = (
    "ardern_1",
    "ardern_2",
    "biden_1",
    "macron_1",
    "macron_2",
    "obama_1",
    "obama_2",
    "obama_3",
    "sunak_1",
)


@dataclass(frozen=True)
class Detection:
    name: str
    image: np.ndarray  # BGR
    row: np.ndarray  # YuNet's 15 floats: box, 5 landmarks, score (what alignCrop takes)

    @property
    def face(self) -> Face:
        r = self.row
        return Face(box=tuple(float(v) for v in r[:4]), score=float(r[14]), landmarks=r[4:14].reshape(5, 2))  # type: ignore[arg-type]


def yunet_path() -> Path:
    return sface_source().parent / "face_detection_yunet_2023mar_int8bq.onnx"


@pytest.fixture(scope="session")
def sface_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_sface(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def model(sface_file: Path) -> EmbeddingModel:
    return EmbeddingModel.load(str(sface_file))


@pytest.fixture(scope="session")
def recognizer() -> cv2.FaceRecognizerSF:
    return cv2.FaceRecognizerSF.create(str(sface_source()), "")


@pytest.fixture(scope="session")
def detections() -> dict[str, Detection]:
    """The most confident YuNet face of every photo (each shows one person)."""
    detector = cv2.FaceDetectorYN.create(str(yunet_path()), "", (320, 320), 0.7)
    found = {}
    for name in NAMES:
        image = cv2.imread(str(PHOTOS / f"{name}.jpg"))
        assert image is not None, name
        detector.setInputSize((image.shape[1], image.shape[0]))
        _, faces = detector.detect(image)
        assert faces is not None and len(faces) >= 1, f"YuNet found no face in {name}"
        best = faces[np.argmax(faces[:, 14])]
        found[name] = Detection(name, image, best.astype(np.float32))
    return found
