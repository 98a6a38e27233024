"""OpenFace nn4.small2: Keras-OpenFace CSV weights written here, loaded, exported, run by onnxruntime."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from bus.errors import FacestreamError
from bus.model_card import ModelCard

pytestmark = pytest.mark.train


def write_csv_weights(model: Any, folder: Path, seed: int) -> dict[str, list[np.ndarray]]:
    """Random weights in the public layout: Torch-ordered conv kernels, BN w/b/m/v, dense_w (128 x 736)."""
    from trainer.nets.openface import keras_to_torch, weight_files

    rng = np.random.default_rng(seed)
    folder.mkdir()
    written: dict[str, list[np.ndarray]] = {}
    for name, stems in weight_files(model).items():
        layer = model.get_layer(name)
        values = []
        for stem, weight in zip(stems, layer.weights, strict=True):
            shape = tuple(weight.shape)
            if stem.endswith("_v"):  # running variance: positive
                value = rng.uniform(0.5, 1.5, shape)
            elif stem.endswith("_w") and len(shape) == 1:  # BN gamma
                value = rng.uniform(0.8, 1.2, shape)
            elif len(shape) > 1:
                value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
            else:
                value = rng.uniform(-0.1, 0.1, shape)
            value = value.astype(np.float32)
            np.savetxt(folder / f"{stem}.csv", keras_to_torch(layer, stem, value), delimiter=",", fmt="%.9g")
            values.append(value)
        written[name] = values
    return written


def test_csv_weights_load_export_and_run(
    tf: ModuleType,
    tmp_path: Path,
    aligned_faces: dict[int, list[np.ndarray]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from trainer import cli
    from trainer.nets.openface import load_openface_csv, openface_card, openface_nn4_small2
    from trainer.preprocess import to_input

    model = openface_nn4_small2()
    assert model.output_shape == (None, 128)
    folder = tmp_path / "weights"
    written = write_csv_weights(model, folder, seed=5)
    assert (folder / "dense_w.csv").is_file() and (folder / "inception_5b_pool_bn_v.csv").is_file()
    assert len(written) == 37 + 37 + 1  # conv + batch norm + dense, as in Keras-OpenFace WEIGHTS
    assert np.loadtxt(folder / "conv1_w.csv", delimiter=",").shape == (64, 3 * 7 * 7)
    assert np.loadtxt(folder / "dense_w.csv", delimiter=",").shape == (128, 736)

    fresh = openface_nn4_small2()
    assert load_openface_csv(fresh, folder) == len(written)
    for name, values in written.items():
        for got, want in zip(fresh.get_layer(name).get_weights(), values, strict=True):
            np.testing.assert_array_equal(got, want, err_msg=name)

    card = openface_card()
    faces = aligned_faces[96]
    batch = to_input(faces, card)
    want_emb = np.asarray(fresh(batch, training=False))
    np.testing.assert_allclose(np.linalg.norm(want_emb, axis=1), 1.0, atol=1e-5)

    onnx_path = tmp_path / "openface.onnx"
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command"))
    args = p.parse_args(
        ["export", "openface", "--weights", str(folder), "--out", str(onnx_path), "--threads", "2"]
    )
    assert cli.cmd_export(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parity_max_abs_diff"] < 1e-4

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    got_card = ModelCard.from_props(dict(meta))
    assert got_card == card
    assert sess.get_inputs()[0].shape[1:] == [96, 96, 3]
    got = sess.run(None, {sess.get_inputs()[0].name: to_input(faces, got_card)})[0]
    assert float(np.abs(got - want_emb).max()) < 1e-4
    # different people get different vectors, even with random weights
    assert float(np.min(got @ got.T)) < 0.999


def test_missing_or_bad_csv(tf: ModuleType, tmp_path: Path) -> None:
    from trainer.nets.openface import load_openface_csv, openface_nn4_small2

    model = openface_nn4_small2()
    with pytest.raises(FacestreamError, match="folder not found"):
        load_openface_csv(model, tmp_path / "nothing")
    (tmp_path / "w").mkdir()
    with pytest.raises(FacestreamError, match=r"weight file missing: .*conv1_w\.csv"):
        load_openface_csv(model, tmp_path / "w")
    np.savetxt(tmp_path / "w" / "conv1_w.csv", np.zeros((2, 3)), delimiter=",")
    with pytest.raises(FacestreamError, match=r"conv1_w\.csv holds 6 numbers"):
        load_openface_csv(model, tmp_path / "w")
    (tmp_path / "w" / "conv1_w.csv").write_text("1,2,x\n")
    with pytest.raises(FacestreamError, match="not a CSV of numbers"):
        load_openface_csv(model, tmp_path / "w")
