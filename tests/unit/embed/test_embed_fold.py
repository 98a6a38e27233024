"""The folded fp32 models run in onnxruntime and compute what OpenCV computes from the int8 files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from bus.errors import FacestreamError
from bus.model_card import ModelCard
from embed.fold import dequantize, fold_file, fold_model
from embed.zoo import SFACE_CARD, sface_source

from .conftest import Detection, yunet_path


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_dequantize_blocked_with_partial_last_block() -> None:
    x = np.arange(-5, 5, dtype=np.int8).reshape(1, 10)
    scale = np.array([[0.5, 2.0, 10.0]], np.float32)  # blocks of 4: [0:4], [4:8], [8:10]
    zp = np.array([[1, -1, 0]], np.int8)
    got = dequantize(x, scale, zp, axis=1, block_size=4)
    want = np.concatenate([(x[0, :4] - 1) * 0.5, (x[0, 4:8] + 1) * 2.0, x[0, 8:] * 10.0])
    np.testing.assert_array_equal(got[0], want.astype(np.float32))
    assert got.dtype == np.float32


def test_dequantize_per_tensor_and_per_axis() -> None:
    x = np.array([[1, 2], [3, 4]], np.int8)
    np.testing.assert_array_equal(
        dequantize(x, np.array(0.5, np.float32), np.array(1, np.int8)), (x - 1) * 0.5
    )
    got = dequantize(x, np.array([1.0, 10.0], np.float32), None, axis=0)
    np.testing.assert_array_equal(got, [[1, 2], [30, 40]])


def test_dequantize_refuses_scales_that_do_not_cover_the_input() -> None:
    with pytest.raises(FacestreamError, match="do not cover"):
        dequantize(np.zeros((1, 10), np.int8), np.ones((1, 2), np.float32), None, axis=1, block_size=4)


def test_folded_sface_is_plain_fp32_with_dynamic_batch_and_card(sface_file: Path) -> None:
    model = onnx.load(str(sface_file))
    onnx.checker.check_model(model, full_check=True)
    ops = {n.op_type for n in model.graph.node}
    assert "DequantizeLinear" not in ops and "Reshape" not in ops
    assert [i.name for i in model.graph.input] == ["data"]  # weights and scalar_op1/2 are gone
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [3, 112, 112]
    assert model.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in model.graph.initializer)
    props = {p.key: p.value for p in model.metadata_props}
    assert ModelCard.from_props(props) == SFACE_CARD
    session = _session(sface_file)
    out = session.run(None, {"data": np.zeros((3, 3, 112, 112), np.float32)})[0]
    assert out.shape == (3, 128)


def test_sface_matches_opencv_on_real_aligned_faces(
    sface_file: Path, recognizer: cv2.FaceRecognizerSF, detections: dict[str, Detection]
) -> None:
    """OpenCV runs the shipped int8 file; the folded model must give the same features (un-normalised)."""
    session = _session(sface_file)
    worst = 0.0
    for det in detections.values():
        aligned = recognizer.alignCrop(det.image, det.row)
        want = recognizer.feature(aligned)
        blob = cv2.dnn.blobFromImage(aligned, 1.0, (112, 112), (0, 0, 0), swapRB=True, crop=False)
        got = session.run(None, {"data": blob})[0]
        worst = max(worst, float(np.abs(got - want).max()))
    print(f"SFace folded vs cv2.FaceRecognizerSF.feature: max abs diff {worst:.2e}")
    assert worst < 1e-4


def test_yunet_folds_too_and_matches_opencv_raw_outputs(
    tmp_path: Path, detections: dict[str, Detection]
) -> None:
    """The same fold turns YuNet into a batchable fp32 model (batch-1 reshapes rewritten)."""
    folded = tmp_path / "yunet.onnx"
    fold_file(yunet_path(), folded)
    net = cv2.dnn.readNet(str(yunet_path()))
    names = list(net.getUnconnectedOutLayersNames())
    session = _session(folded)
    order = [o.name for o in session.get_outputs()]
    blobs = [
        cv2.dnn.blobFromImage(cv2.resize(detections[n].image, (640, 640))) for n in ("macron_1", "obama_2")
    ]
    batched = dict(zip(order, session.run(None, {"input": np.concatenate(blobs)}), strict=True))
    worst = 0.0
    for i, blob in enumerate(blobs):
        net.setInput(blob)
        for name, want in zip(names, net.forward(names), strict=True):
            got = batched[name][i]
            worst = max(worst, float(np.abs(got - want.reshape(got.shape)).max()))
    print(f"YuNet folded (batch 2) vs cv2.dnn int8: max abs diff {worst:.2e}")
    assert worst < 1e-4


def test_fold_refuses_quantized_activations() -> None:
    """A DequantizeLinear fed by the graph input cannot be folded and must not be silently kept."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["x", "s"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.array(0.5, np.float32), "s")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    with pytest.raises(FacestreamError, match="activations"):
        fold_model(model)


def test_fold_file_reports_unreadable_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(FacestreamError, match="not a readable ONNX"):
        fold_file(bad, tmp_path / "out.onnx")
    with pytest.raises(FacestreamError, match="not found"):
        fold_file(tmp_path / "missing.onnx", tmp_path / "out.onnx")
    assert sface_source().is_file()
