"""VGGFace2 ResNet50 / SENet50: keras-vggface weight files written here (with and without top), loaded
by name, exported by `facestream export`, run by onnxruntime and by embed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest

from bus.errors import FacestreamError
from embed.model import EmbeddingModel
from tests.unit.trainer.conftest import VGGFace2Export
from tests.unit.trainer.keras2_files import write_keras2_h5

pytestmark = pytest.mark.train


def test_senet50_architecture(tf: ModuleType) -> None:
    from trainer.cli import VGGFACE2
    from trainer.nets.vggface2 import ARCHS, vggface2_net

    assert VGGFACE2 == ARCHS  # the CLI spells them out so that parsing needs no Keras
    senet = vggface2_net("senet50")
    # SE-ResNet50 has 26,076,096 parameters; keras-vggface's squeeze-excite convolutions add
    # 16,048 biases (C/16 + C for each of the 16 blocks)
    assert senet.count_params() == 26_076_096 + 16_048 and senet.output_shape == (None, 1, 1, 2048)
    assert senet.get_layer("conv5_3_1x1_up").get_weights()[0].shape == (1, 1, 128, 2048)
    assert senet.get_layer("conv2_1_1x1_reduce.bn").epsilon == pytest.approx(1e-4)
    with pytest.raises(FacestreamError, match="must be one of resnet50, senet50"):
        vggface2_net("resnet101")  # type: ignore[arg-type]


def _check_export(export: VGGFace2Export, arch: str) -> None:
    from trainer.nets.vggface2 import vggface2_card

    assert export.report["model"] == arch and export.report["parity_max_abs_diff"] < 1e-4
    proto = onnx.load(str(export.onnx), load_external_data=False)
    assert proto.opset_import[0].version == 17
    model = EmbeddingModel.load(str(export.onnx))
    card = model.card
    assert card == replace(vggface2_card(arch), source=card.source)  # type: ignore[arg-type]
    assert export.weights.name in card.source
    assert (card.color_order, card.mean, card.embedding_dim, card.threshold) == (
        "BGR",
        (91.4953, 103.8827, 131.0912),
        2048,
        0.5,
    )
    # embed's own preprocessing of the crops gives the vectors of the net that wrote the file
    got = model.embed(export.faces)
    assert got.shape == (len(export.faces), 2048)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float(np.abs(got - export.expected).max()) < 1e-4
    assert float((got @ got.T).min()) < 0.999  # different faces, different vectors


def test_resnet50_with_top_exports(resnet50_export: VGGFace2Export) -> None:
    _check_export(resnet50_export, "resnet50")
    assert resnet50_export.report["classifier_in_file"] is True


def test_senet50_without_top_exports(senet50_export: VGGFace2Export) -> None:
    _check_export(senet50_export, "senet50")
    assert senet50_export.report["classifier_in_file"] is False


def test_resnet50_file_loads_by_name_and_wrong_files_are_refused(
    tf: ModuleType, tmp_path: Path, resnet50_export: VGGFace2Export, senet50_export: VGGFace2Export
) -> None:
    from trainer.nets.vggface2 import keras_name, load_vggface2_h5, public_name, vggface2_from_h5

    net = vggface2_from_h5("resnet50", resnet50_export.weights)  # the file has the classifier
    # keras-vggface's model.summary(): VGGFace(model='resnet50', include_top=False) has 23,561,152
    assert net.count_params() == 23_561_152 + 2048 * 8631 + 8631
    weighted = [public_name(layer.name) for layer in net.layers if layer.weights]
    assert len(weighted) == 107 and weighted[:3] == ["conv1/7x7_s2", "conv1/7x7_s2/bn", "conv2_1_1x1_reduce"]
    assert {"conv2_1_1x1_proj", "conv5_3_1x1_increase/bn", "classifier"} <= set(weighted)
    assert net.get_layer("conv1.7x7_s2.bn").epsilon == pytest.approx(1e-3)
    # the stride sits on each stage's first 1x1 convolution: 55 -> 28 -> 14 -> 7
    sizes = {s: net.get_layer(f"conv{s}_1_1x1_reduce").output.shape[1] for s in (2, 3, 4, 5)}
    assert sizes == {2: 55, 3: 28, 4: 14, 5: 7}
    for name, arrays in resnet50_export.samples.items():
        for got, want in zip(net.get_layer(keras_name(name)).get_weights(), arrays, strict=True):
            np.testing.assert_array_equal(got, want, err_msg=name)
    probs = np.asarray(net(np.zeros((1, 224, 224, 3), np.float32), training=False))
    assert probs.shape == (1, 8631) and probs.sum() == pytest.approx(1.0, abs=1e-4)

    with pytest.raises(FacestreamError, match=r"holds senet50 weights, not resnet50.*export senet50"):
        load_vggface2_h5(net, senet50_export.weights, "resnet50")
    with pytest.raises(FacestreamError, match="holds resnet50 weights, not senet50"):
        vggface2_from_h5("senet50", resnet50_export.weights)

    # every layer name right, tiny arrays: names are checked first, then each shape
    tiny = tmp_path / "tiny.h5"
    layers = [(n, [(f"{n}/kernel:0", np.zeros(3, np.float32))]) for n in weighted]
    write_keras2_h5(tiny, layers[:-1])  # no classifier: a file without top
    with pytest.raises(
        FacestreamError, match=r"1 layers missing, e\.g\. classifier \(this file has no top\)"
    ):
        load_vggface2_h5(net, tiny, "resnet50")
    write_keras2_h5(tiny, layers)
    with pytest.raises(FacestreamError, match=r"layer conv1/7x7_s2 holds shapes \[\(3,\)\], the net needs"):
        load_vggface2_h5(net, tiny, "resnet50")
    write_keras2_h5(tiny, [("conv2d_1", [("conv2d_1/kernel:0", np.zeros(3, np.float32))])])
    with pytest.raises(FacestreamError, match="not a keras-vggface resnet50 weight file: 107 layers missing"):
        load_vggface2_h5(net, tiny, "resnet50")
    with pytest.raises(FacestreamError, match="resnet50 weight file not found"):
        load_vggface2_h5(net, tmp_path / "missing.h5", "resnet50")
