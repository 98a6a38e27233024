"""Keras -> ONNX (opset 17) with the model card in the metadata, and the Keras/onnxruntime parity check."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from bus.errors import FacestreamError
from bus.model_card import ModelCard
from trainer.tfenv import require_tf, require_tf2onnx

OPSET = 17
PARITY_LIMIT = 1e-4
log = logging.getLogger(__name__)


def set_metadata(proto: onnx.ModelProto, props: Mapping[str, str]) -> None:
    """Replace (not duplicate) each key in the model's metadata_props."""
    keep = [p for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=str(value))


def save(proto: onnx.ModelProto, path: Path, props: Mapping[str, str]) -> Path:
    set_metadata(proto, props)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return path


def convert_tf2onnx(model: Any, input_shape: Sequence[int | None]) -> onnx.ModelProto:
    """tf2onnx on a Functional model; the input is named "input", batch (and any None) dynamic."""
    tf = require_tf()
    tf2onnx = require_tf2onnx()
    spec = [tf.TensorSpec((None, *input_shape), tf.float32, name="input")]
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
    except Exception as exc:  # tf2onnx raises many kinds; say which model failed
        raise FacestreamError(f"tf2onnx could not convert {model.name}: {exc}") from exc
    return proto


def export_keras(model: Any, path: Path, props: Mapping[str, str]) -> Path:
    proto = convert_tf2onnx(model, tuple(model.input_shape[1:]))
    out = save(proto, path, props)
    log.info("wrote %s", out)
    return out


def export_embedder(model: Any, path: Path, card: ModelCard) -> Path:
    card.validate(str(path))
    return export_keras(model, path, card.to_props())


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def parity(model: Any, path: Path, batch: np.ndarray, limit: float = PARITY_LIMIT) -> float:
    """Largest |Keras - onnxruntime| over every output for `batch`; raises when over `limit`."""
    sess = session(path)
    names = [o.name for o in sess.get_outputs()]
    got = sess.run(names, {sess.get_inputs()[0].name: batch.astype(np.float32)})
    want = model(batch.astype(np.float32), training=False)
    want_list = list(want) if isinstance(want, list | tuple) else [want]
    if len(want_list) != len(got):
        raise FacestreamError(f"{path}: {len(got)} outputs, the Keras model has {len(want_list)}")
    diff = 0.0
    for w, g in zip(want_list, got, strict=True):
        w_np = np.asarray(w)
        if w_np.shape != g.shape:
            raise FacestreamError(f"{path}: output shape {g.shape} differs from Keras {w_np.shape}")
        diff = max(diff, float(np.max(np.abs(w_np - g))) if w_np.size else 0.0)
    if not diff < limit:
        raise FacestreamError(f"{path}: ONNX output differs from Keras by {diff:.3g} (limit {limit:g})")
    return diff


def check_embedder_file(path: Path) -> ModelCard:
    """What the runtime will do: read the card, run a zero batch, expect unit vectors of its size."""
    sess = session(path)
    card = ModelCard.from_props(dict(sess.get_modelmeta().custom_metadata_map), where=str(path))
    channels = 1 if card.color_order == "GRAY" else 3
    h, w = card.input_height, card.input_width
    shape = (2, channels, h, w) if card.layout == "NCHW" else (2, h, w, channels)
    rng = np.random.default_rng(0)
    blob = ((rng.integers(0, 256, shape).astype(np.float32)) - card.mean[0]) / card.std[0]
    out = sess.run(None, {sess.get_inputs()[0].name: blob})[0].reshape(2, -1)
    if out.shape[1] != card.embedding_dim:
        raise FacestreamError(f"{path}: {out.shape[1]}-d output, card says {card.embedding_dim}")
    norms = np.linalg.norm(out, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-4):
        raise FacestreamError(f"{path}: outputs are not unit vectors (norms {norms})")
    return card
