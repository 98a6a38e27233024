"""EmbeddingModel: real SFace embeddings on real photos, card-driven preprocessing, clear errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from bus.errors import FacestreamError
from bus.model_card import ModelCard
from embed.model import EmbeddingModel
from embed.zoo import SFACE_CARD

from .conftest import Detection


def _person(name: str) -> str:
    return name.split("_")[0]


def test_load_bundled_sface_by_name(sface_file: Path) -> None:
    model = EmbeddingModel.load("sface", cache_dir=sface_file.parent)
    assert model.path == sface_file
    assert model.card == SFACE_CARD and model.model_id == "sface-2021dec" and model.dim == 128


def test_same_person_above_threshold_others_below(
    model: EmbeddingModel, detections: dict[str, Detection]
) -> None:
    vectors = {n: model.embed_faces(d.image, [d.face])[0] for n, d in detections.items()}
    threshold = model.card.threshold
    lowest_same, highest_other = 1.0, -1.0
    for a, b in itertools.combinations(sorted(vectors), 2):
        score = float(vectors[a] @ vectors[b])
        if _person(a) == _person(b):
            lowest_same = min(lowest_same, score)
            assert score > threshold, f"{a} vs {b}: {score:.3f}"
        else:
            highest_other = max(highest_other, score)
            assert score < threshold, f"{a} vs {b}: {score:.3f}"
    print(f"SFace cosine: lowest same-person {lowest_same:.3f}, highest different-person {highest_other:.3f}")


def test_embed_matches_opencv_match_scores(
    model: EmbeddingModel, recognizer: object, detections: dict[str, Detection]
) -> None:
    """Cosine of our vectors equals cv2.FaceRecognizerSF.match on OpenCV's own features."""
    import cv2

    rec: cv2.FaceRecognizerSF = recognizer  # type: ignore[assignment]
    for a, b in (("macron_1", "macron_2"), ("ardern_1", "obama_3"), ("obama_1", "obama_2")):
        da, db = detections[a], detections[b]
        fa = rec.feature(rec.alignCrop(da.image, da.row))
        fb = rec.feature(rec.alignCrop(db.image, db.row))
        want = rec.match(fa, fb, cv2.FaceRecognizerSF_FR_COSINE)
        va, vb = model.embed_faces(da.image, [da.face])[0], model.embed_faces(db.image, [db.face])[0]
        assert abs(float(va @ vb) - want) < 1e-5


def test_batch_of_five_equals_five_singles(model: EmbeddingModel, detections: dict[str, Detection]) -> None:
    names = ["macron_1", "ardern_2", "obama_3", "sunak_1", "biden_1"]
    aligned = [model.align(detections[n].image, detections[n].face) for n in names]
    batch = model.embed(aligned)
    singles = np.concatenate([model.embed([a]) for a in aligned])
    assert batch.shape == (5, 128) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(model.embed(aligned, batch_size=2), batch, atol=1e-5)


def test_empty_input_gives_zero_rows(model: EmbeddingModel, detections: dict[str, Detection]) -> None:
    assert model.embed([]).shape == (0, 128)
    assert model.embed_faces(detections["obama_1"].image, []).shape == (0, 128)


def test_align_in_crop_coordinates_equals_align_in_frame(
    model: EmbeddingModel, detections: dict[str, Detection]
) -> None:
    det = detections["ardern_1"]
    x, y, w, h = (int(v) for v in det.face.box)
    x0, y0 = max(0, x - w // 2), max(0, y - h // 2)
    crop = det.image[y0 : y + h + h // 2, x0 : x + w + w // 2]
    whole = model.align(det.image, det.face)
    from_crop = model.align(crop, det.face, origin=(x0, y0))
    assert np.abs(whole.astype(int) - from_crop).max() <= 1
    # Without landmarks the box is used instead.
    boxed = model.align(det.image, type(det.face)(box=det.face.box, score=det.face.score))
    assert boxed.shape == (112, 112, 3) and not np.array_equal(boxed, whole)


def _variant(src: Path, dst: Path) -> ModelCard:
    """SFace rewritten to take NHWC BGR input normalised outside: the card must make up for all three."""
    model = onnx.load(str(src))
    g = model.graph
    sub = next(n for n in g.node if n.op_type == "Sub" and n.input[0] == "data")
    mul = next(n for n in g.node if n.op_type == "Mul" and n.input[0] == sub.output[0])
    first = next(n for n in g.node if mul.output[0] in n.input)
    g.node.remove(sub)
    g.node.remove(mul)
    first.input[0] = "data_nchw"
    g.node.insert(0, helper.make_node("Transpose", ["data"], ["data_nchw"], perm=[0, 3, 1, 2]))
    weight = next(t for t in g.initializer if t.name == first.input[1])
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight)[:, ::-1].copy(), weight.name))
    for name in ("scalar_op1", "scalar_op2"):
        g.initializer.remove(next(t for t in g.initializer if t.name == name))
    g.input[0].CopyFrom(helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 112, 112, 3]))
    card = ModelCard(
        model_id="sface-nhwc-bgr",
        input_width=112,
        input_height=112,
        embedding_dim=128,
        color_order="BGR",
        layout="NHWC",
        mean=(127.5, 127.5, 127.5),
        std=(128.0, 128.0, 128.0),
        threshold=0.363,
    )
    del model.metadata_props[:]
    for k, v in card.to_props().items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return card


def test_card_drives_layout_colour_and_normalisation(
    tmp_path: Path, sface_file: Path, model: EmbeddingModel, detections: dict[str, Detection]
) -> None:
    card = _variant(sface_file, tmp_path / "variant.onnx")
    variant = EmbeddingModel.load(str(tmp_path / "variant.onnx"))
    assert variant.card == card
    aligned = [model.align(d.image, d.face) for d in list(detections.values())[:4]]
    np.testing.assert_allclose(variant.embed(aligned), model.embed(aligned), atol=1e-5)
    # A wrong colour order in the card changes the result: the card is really used.
    wrong = ModelCard(**{**card.__dict__, "color_order": "RGB"})
    m = onnx.load(str(tmp_path / "variant.onnx"))
    del m.metadata_props[:]
    for k, v in wrong.to_props().items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(tmp_path / "wrong.onnx"))
    off = EmbeddingModel.load(str(tmp_path / "wrong.onnx")).embed(aligned)
    assert np.abs(off - model.embed(aligned)).max() > 0.05


def _tiny(path: Path, shape: list[int | str], card: ModelCard | None) -> None:
    """Mean colour per channel: a real, checkable ONNX embedder for error and batch handling."""
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["x"], ["p"]),
            helper.make_node("Flatten", ["p"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], 3])],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if card is not None:
        for k, v in card.to_props().items():
            m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))


TINY = ModelCard(model_id="tiny", input_width=16, input_height=16, embedding_dim=3, color_order="BGR")


def test_fixed_batch_one_model_embeds_any_count(tmp_path: Path) -> None:
    _tiny(tmp_path / "tiny.onnx", [1, 3, 16, 16], TINY)
    model = EmbeddingModel.load(str(tmp_path / "tiny.onnx"))
    images = [np.full((16, 16, 3), (b, 20, 30), np.uint8) for b in (10, 40, 90)]
    got = model.embed(images)
    want = np.array([[b, 20, 30] for b in (10, 40, 90)], np.float32)
    np.testing.assert_allclose(got, want / np.linalg.norm(want, axis=1, keepdims=True), atol=1e-6)
    # Crops of another size are resized to the card's input size.
    np.testing.assert_allclose(
        model.embed([np.full((40, 30, 3), (10, 20, 30), np.uint8)]), got[:1], atol=1e-6
    )


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FacestreamError, match="not found"):
        EmbeddingModel.load(str(tmp_path / "nope.onnx"))
    with pytest.raises(FacestreamError, match="not a file"):
        EmbeddingModel.load(str(tmp_path))


@pytest.mark.parametrize("content", [b"", b"this is not a protobuf \xff\xfe" * 40, "truncated"])
def test_corrupt_file_is_a_clear_error(tmp_path: Path, sface_file: Path, content: bytes | str) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(sface_file.read_bytes()[:5000] if content == "truncated" else content)  # type: ignore[arg-type]
    with pytest.raises(FacestreamError, match="not a usable ONNX model"):
        EmbeddingModel.load(str(bad))


def test_onnx_without_metadata_is_refused(tmp_path: Path) -> None:
    _tiny(tmp_path / "plain.onnx", ["N", 3, 16, 16], None)
    with pytest.raises(FacestreamError, match=r"lacks 'facestream\.model_id'"):
        EmbeddingModel.load(str(tmp_path / "plain.onnx"))


def test_input_shape_not_matching_card_is_refused(tmp_path: Path) -> None:
    _tiny(tmp_path / "t.onnx", ["N", 3, 16, 16], ModelCard(**{**TINY.__dict__, "input_width": 96}))
    with pytest.raises(FacestreamError, match="does not match the model card"):
        EmbeddingModel.load(str(tmp_path / "t.onnx"))
    _tiny(tmp_path / "u.onnx", ["N", 3, 16, 16], ModelCard(**{**TINY.__dict__, "layout": "NHWC"}))
    with pytest.raises(FacestreamError, match="does not match the model card"):
        EmbeddingModel.load(str(tmp_path / "u.onnx"))
    _tiny(tmp_path / "v.onnx", ["N", 3, 16, 16], ModelCard(**{**TINY.__dict__, "embedding_dim": 128}))
    with pytest.raises(FacestreamError, match="output has 3 values"):
        EmbeddingModel.load(str(tmp_path / "v.onnx"))
