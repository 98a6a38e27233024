"""VGG-Face: a weight file written here in vgg_face_weights.h5's layout, loaded, exported, run by onnxruntime."""

from __future__ import annotations

import argparse
import gc
import json
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import onnxruntime as ort
import pytest

from bus.errors import FacestreamError
from bus.model_card import ModelCard
from tests.unit.trainer.keras2_files import write_keras2_h5

pytestmark = pytest.mark.train


def keras2_layer_names() -> list[tuple[str, bool]]:
    """deepface's Sequential VGG-Face as Keras 2 named it: (layer name, has weights)."""
    names: list[tuple[str, bool]] = []
    conv = pad = 0
    for pool, convs in enumerate((2, 2, 3, 3, 3), start=1):
        for _ in range(convs):
            pad += 1
            conv += 1
            names += [(f"zero_padding2d_{pad}", False), (f"conv2d_{conv}", True)]
        names.append((f"max_pooling2d_{pool}", False))
    for i, drop in ((14, "dropout_1"), (15, "dropout_2")):
        names += [(f"conv2d_{i}", True), (drop, False)]
    return [*names, ("conv2d_16", True), ("flatten_1", False), ("activation_1", False)]


def write_vgg_face_h5(path: Path, arrays: list[list[np.ndarray]]) -> None:
    """vgg_face_weights.h5's layout: every layer of the Sequential model, weights named kernel:0, bias:0."""
    weighted = iter(arrays)
    layers = []
    for name, has_weights in keras2_layer_names():
        values = next(weighted) if has_weights else []
        weight_names = [f"{name}/kernel:0", f"{name}/bias:0"][: len(values)]
        layers.append((name, list(zip(weight_names, values, strict=True))))
    write_keras2_h5(path, layers)


def he_weights(shapes: list[list[tuple[int, ...]]], seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for kernel, bias in shapes:
        fan_in = int(np.prod(kernel[:-1]))
        out.append(
            [
                (rng.standard_normal(kernel, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))),
                rng.uniform(-0.05, 0.05, bias).astype(np.float32),
            ]
        )
    return out


def test_weight_file_loads_exports_and_runs(
    tf: ModuleType,
    tmp_path: Path,
    aligned_faces: dict[int, list[np.ndarray]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    import keras

    from trainer import cli
    from trainer.nets.vggface import load_vggface_h5, vggface_card, vggface_classifier, vggface_descriptor
    from trainer.preprocess import to_input

    faces = aligned_faces[224][:4]
    card = vggface_card("fc8")
    batch = to_input(faces, card)

    classifier = vggface_classifier()
    shapes = [[tuple(w.shape) for w in layer.weights] for layer in classifier.layers if layer.weights]
    assert len(shapes) == 16
    arrays = he_weights(shapes, seed=3)
    h5 = tmp_path / "vgg_face_weights.h5"
    write_vgg_face_h5(h5, arrays)
    load_vggface_h5(classifier, h5)
    np.testing.assert_array_equal(classifier.get_layer("conv1_1").get_weights()[0], arrays[0][0])
    np.testing.assert_array_equal(classifier.get_layer("fc6").get_weights()[0], arrays[13][0])
    np.testing.assert_array_equal(classifier.get_layer("fc8").get_weights()[1], arrays[15][1])
    want = np.asarray(vggface_descriptor(classifier, "fc8")(batch, training=False))
    probs = np.asarray(classifier(batch[:1], training=False))
    assert probs.shape == (1, 2622) and probs.sum() == pytest.approx(1.0, abs=1e-4)
    del classifier, arrays
    keras.backend.clear_session()
    gc.collect()

    onnx_path = tmp_path / "vggface.onnx"
    argv = ["export", "vggface", "--weights", str(h5), "--out", str(onnx_path), "--threads", "2"]
    parser = cli_parser(cli)
    assert cli.cmd_export(parser.parse_args(argv)) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parity_max_abs_diff"] < 1e-4

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got_card = ModelCard.from_props(dict(sess.get_modelmeta().custom_metadata_map))
    assert got_card == replace(card, source=got_card.source) and "vgg_face_weights.h5" in got_card.source
    assert sess.get_inputs()[0].shape[1:] == [224, 224, 3]
    got = sess.run(None, {sess.get_inputs()[0].name: to_input(faces, got_card)})[0]
    assert got.shape == (len(faces), 2622)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float(np.abs(got - want).max()) < 1e-4


def cli_parser(cli: ModuleType) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command"))
    return p


def test_wrong_files_are_refused(tf: ModuleType, tmp_path: Path) -> None:
    from trainer.nets.vggface import load_vggface_h5, vggface_classifier

    classifier = vggface_classifier()
    with pytest.raises(FacestreamError, match="not found"):
        load_vggface_h5(classifier, tmp_path / "missing.h5")
    text = tmp_path / "not.h5"
    text.write_text("hello")
    with pytest.raises(FacestreamError, match="not an HDF5"):
        load_vggface_h5(classifier, text)
    tiny = [[np.zeros((1,), np.float32), np.zeros((1,), np.float32)] for _ in range(16)]
    bad_shapes = tmp_path / "bad_shapes.h5"
    write_vgg_face_h5(bad_shapes, tiny)
    with pytest.raises(FacestreamError, match=r"layer conv2d_1 holds shapes \[\(1,\), \(1,\)\]"):
        load_vggface_h5(classifier, bad_shapes)

    import h5py

    short = tmp_path / "short.h5"
    with h5py.File(short, "w") as f:
        f.attrs["layer_names"] = [b"conv2d_1"]
        f.create_group("conv2d_1").attrs["weight_names"] = [b"conv2d_1/kernel:0"]
        f["conv2d_1"].create_dataset("conv2d_1/kernel:0", data=np.zeros((3, 3, 3, 64), np.float32))
    with pytest.raises(FacestreamError, match="1 layers with weights, VGG-Face has 16"):
        load_vggface_h5(classifier, short)
