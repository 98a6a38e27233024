"""Shared inputs for the trainer tests: TensorFlow with few threads (CI has 2 cores), real photos."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest

PHOTOS = Path(__file__).resolve().parents[3] / "deploy" / "demo_assets" / "photos"


@pytest.fixture(scope="session")
def tf() -> ModuleType:
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    from trainer.tfenv import require_tf

    return require_tf(threads=2)


@pytest.fixture(scope="session")
def photos_dir() -> Path:
    assert len(list(PHOTOS.glob("*.jpg"))) == 9, f"expected the 9 demo photos in {PHOTOS}"
    return PHOTOS


@pytest.fixture(scope="session")
def aligned_faces(photos_dir: Path) -> dict[int, list[np.ndarray]]:
    """Real faces of the demo photos, aligned by YuNet + embed's 5-point warp, per crop size."""
    from trainer.facedata import parity_crops

    return {size: parity_crops(photos_dir, size, limit=9) for size in (64, 96, 224)}


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100, f"{path} is not a picture"
    return image
