"""`facestream train faces` on the demo photos (real faces, found and aligned by our detector + embed)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from bus.errors import FacestreamError
from bus.model_card import ModelCard
from tests.unit.trainer.conftest import read_png
from trainer.facedata import find_images, holdout


def test_folder_layouts(tmp_path: Path, photos_dir: Path) -> None:
    flat = find_images(photos_dir)
    assert [p for p, _ in flat].count("obama") == 3 and {p for p, _ in flat} == {
        "ardern",
        "biden",
        "macron",
        "obama",
        "sunak",
    }
    nested = tmp_path / "people"
    for person, path in flat[:4]:
        (nested / person).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, nested / person / path.name)
    (nested / "notes.txt").write_text("not an image")
    assert [(p, f.name) for p, f in find_images(nested)] == [(p, f.name) for p, f in flat[:4]]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacestreamError, match="no images"):
        find_images(tmp_path / "empty")
    with pytest.raises(FacestreamError, match="not found"):
        find_images(tmp_path / "missing")


def test_holdout_keeps_one_photo_of_people_with_two() -> None:
    train, probe = holdout(["a", "a", "b", "c", "c", "c"])
    assert probe.tolist() == [1, 5] and train.tolist() == [0, 2, 3, 4]


@pytest.mark.train
def test_train_faces_end_to_end(
    tf: ModuleType, tmp_path: Path, photos_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trainer import cli

    out = tmp_path / "faces"
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command"))
    argv = ["train", "faces", str(photos_dir), "--out", str(out), "--epochs", "2", "--steps", "3"]
    args = p.parse_args([*argv, "--batch-size", "16", "--threads", "2", "--no-progress", "--layout", "tsne"])
    assert args.func(args) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics == json.loads((out / "metrics.json").read_text())
    assert metrics["photos"] == 9 and metrics["people"] == 5 and metrics["skipped"] == []
    assert metrics["probes"] == ["ardern_2.jpg", "macron_2.jpg", "obama_3.jpg"]
    assert 0.0 <= metrics["nn_accuracy"] <= 1.0 and metrics["onnx_parity_max_abs_diff"] < 1e-4
    read_png(out / "loss_curve.png")
    read_png(out / "embedding_2d.png")

    # the runtime's view: metadata only, then its preprocessing of an aligned crop
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    card = ModelCard.from_props(dict(sess.get_modelmeta().custom_metadata_map))
    assert (card.input_width, card.color_order, card.layout, card.alignment) == (64, "RGB", "NHWC", "5point")
    assert card.mean == (127.5,) * 3 and card.std == (128.0,) * 3 and card.embedding_dim == 128
    import keras

    from trainer.facedata import parity_crops
    from trainer.preprocess import to_input

    crops = parity_crops(photos_dir, 64, limit=9)
    rgb = [cv2.cvtColor(c, cv2.COLOR_BGR2RGB).astype(np.float32) for c in crops]
    blob = ((np.stack(rgb) - 127.5) / 128.0).astype(np.float32)  # by hand, from the card's numbers
    np.testing.assert_array_equal(blob, to_input(crops, card))
    got = sess.run(None, {sess.get_inputs()[0].name: blob})[0]
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    model = keras.models.load_model(out / "model.keras", compile=False)
    assert float(np.abs(np.asarray(model(blob, training=False)) - got).max()) < 1e-4


@pytest.mark.train
def test_one_person_is_not_enough(tf: ModuleType, tmp_path: Path, photos_dir: Path) -> None:
    from trainer.faces import FacesConfig, run

    solo = tmp_path / "solo"
    solo.mkdir()
    for name in ("obama_1.jpg", "obama_2.jpg"):
        shutil.copy(photos_dir / name, solo / name)
    (solo / "broken_1.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FacestreamError, match="at least 2 people"):
        run(FacesConfig(folder=solo, out=tmp_path / "o", epochs=1, progress=False))
    with pytest.raises(FacestreamError, match="--arch must be"):
        run(FacesConfig(folder=solo, arch="resnet"))


@pytest.mark.train
def test_mtcnn_finds_the_same_training_faces(tf: ModuleType, tmp_path: Path, photos_dir: Path) -> None:
    pytest.importorskip("mtcnn")
    from trainer.export import export_mtcnn
    from trainer.facedata import load_faces

    export_mtcnn(tmp_path / "mtcnn", threads=2)
    by_yunet = load_faces(photos_dir, 64, "yunet")
    by_mtcnn = load_faces(photos_dir, 64, "mtcnn", tmp_path / "mtcnn")
    assert by_mtcnn.people == by_yunet.people and by_mtcnn.crops.shape == (9, 64, 64, 3)
    # both aligned on the same template: each MTCNN crop looks most like the YuNet crop of its own photo
    a = by_yunet.crops.reshape(9, -1).astype(np.float32)
    b = by_mtcnn.crops.reshape(9, -1).astype(np.float32)
    assert np.argmax(np.corrcoef(b, a)[:9, 9:], axis=1).tolist() == list(range(9))
