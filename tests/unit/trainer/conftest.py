"""Shared inputs for the trainer tests: TensorFlow with few threads (CI has 2 cores), real photos."""

from __future__ import annotations

import contextlib
import gc
import io
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

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


@dataclass
class VGGFace2Export:
    """A keras-vggface weight file written here, `facestream export` of it, and what to expect."""

    weights: Path
    onnx: Path
    report: dict[str, Any]
    faces: list[np.ndarray]  # aligned 224x224 BGR crops
    expected: np.ndarray  # the descriptor of the net that wrote the file, on `faces`
    samples: dict[str, list[np.ndarray]]  # a few layers' arrays as written (public names)


def export_vggface2_file(arch: str, top: bool, folder: Path, faces: list[np.ndarray]) -> VGGFace2Export:
    """Random weights in the keras-vggface layout, batch-norm statistics measured on real faces (so
    the 50-layer net stays well conditioned, as a trained one is), exported by the real CLI."""
    import keras

    from deploy.cli import main
    from tests.unit.trainer.keras2_files import keras_vggface_layers, write_keras2_h5
    from trainer.nets.vggface2 import vggface2_card, vggface2_descriptor, vggface2_net
    from trainer.preprocess import to_input

    net = vggface2_net(arch, include_top=top)  # type: ignore[arg-type]
    batch = to_input(faces, vggface2_card(arch))  # type: ignore[arg-type]
    layers = keras_vggface_layers(net, batch, seed=7)
    weights = folder / f"rcmalli_vggface_tf_{'' if top else 'notop_'}{arch}.h5"
    write_keras2_h5(weights, layers)
    expected = np.asarray(vggface2_descriptor(net)(batch, training=False))
    keep = ("conv1/7x7_s2", "conv5_3_1x1_increase/bn", "conv2_1_1x1_up", "classifier")
    samples = {name: [a for _, a in values] for name, values in layers if name in keep}
    del net, layers
    keras.backend.clear_session()
    gc.collect()

    out = folder / f"{arch}.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["export", arch, "--weights", str(weights), "--out", str(out), "--threads", "2"])
    assert code == 0, printed.getvalue()
    keras.backend.clear_session()
    gc.collect()
    return VGGFace2Export(weights, out, json.loads(printed.getvalue()), faces, expected, samples)


@pytest.fixture(scope="session")
def resnet50_export(
    tf: ModuleType, tmp_path_factory: pytest.TempPathFactory, aligned_faces: dict[int, list[np.ndarray]]
) -> VGGFace2Export:
    """ResNet50 from a weight file with the classifier (rcmalli_vggface_tf_resnet50.h5's layout)."""
    return export_vggface2_file("resnet50", True, tmp_path_factory.mktemp("resnet50"), aligned_faces[224][:4])


@pytest.fixture(scope="session")
def senet50_export(
    tf: ModuleType, tmp_path_factory: pytest.TempPathFactory, aligned_faces: dict[int, list[np.ndarray]]
) -> VGGFace2Export:
    """SENet50 from a weight file without top (rcmalli_vggface_tf_notop_senet50.h5's layout)."""
    return export_vggface2_file("senet50", False, tmp_path_factory.mktemp("senet50"), aligned_faces[224][:4])
