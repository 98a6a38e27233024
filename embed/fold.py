"""Fold an int8 block-quantized ONNX back into a plain fp32 graph that onnxruntime runs.

OpenCV Zoo ships SFace and YuNet with `DequantizeLinear(block_size=...)` on constant weights.
onnxruntime 1.32 refuses those files (stray weight graph inputs, block DequantizeLinear), so the
dequantization is done once here in numpy; the result computes what OpenCV computes from the
shipped file, to float rounding.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bus.errors import FacestreamError
from bus.model_card import ModelCard

log = logging.getLogger(__name__)

BATCH = "N"


def dequantize(
    x: np.ndarray,
    scale: np.ndarray,
    zero_point: np.ndarray | None,
    axis: int = 1,
    block_size: int = 0,
) -> np.ndarray:
    """ONNX DequantizeLinear on constants: per-tensor, per-axis or blocked along `axis`."""
    q = x.astype(np.float32)
    s = scale.astype(np.float32)
    z = np.zeros_like(s) if zero_point is None else zero_point.astype(np.float32)
    if s.ndim == 0 or (s.size == 1 and block_size == 0):
        return ((q - z.reshape(())) * s.reshape(())).astype(np.float32)
    axis = axis % x.ndim
    if block_size > 0:
        if s.ndim != x.ndim:
            raise FacestreamError(f"blocked DequantizeLinear: scale rank {s.ndim} != input rank {x.ndim}")
        s = np.repeat(s, block_size, axis=axis)
        z = np.repeat(z, block_size, axis=axis)
        index = [slice(None)] * x.ndim
        index[axis] = slice(0, x.shape[axis])
        s, z = s[tuple(index)], z[tuple(index)]
        if s.shape != x.shape:
            raise FacestreamError(
                f"blocked DequantizeLinear: scales {scale.shape} with block {block_size} "
                f"do not cover input {x.shape}"
            )
    else:  # per-axis: 1-D scale along `axis`
        shape = [1] * x.ndim
        shape[axis] = s.size
        s, z = s.reshape(shape), z.reshape(shape)
    return ((q - z) * s).astype(np.float32)


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(helper.get_attribute_value(a))
    return default


def _fold_constants(graph: onnx.GraphProto) -> tuple[int, int]:
    """Replace DequantizeLinear and Reshape nodes whose inputs are all constants by initializers."""
    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    keep: list[onnx.NodeProto] = []
    folded_dq = folded_reshape = 0
    for node in graph.node:
        if node.op_type == "Constant" and len(node.output) == 1:
            value = next((a for a in node.attribute if a.name == "value"), None)
            if value is not None:
                consts[node.output[0]] = numpy_helper.to_array(value.t)
        inputs_const = all(i == "" or i in consts for i in node.input)
        if node.op_type == "DequantizeLinear" and inputs_const and node.domain in ("", "ai.onnx"):
            zp = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            consts[node.output[0]] = dequantize(
                consts[node.input[0]],
                consts[node.input[1]],
                zp,
                axis=_attr(node, "axis", 1),
                block_size=_attr(node, "block_size", 0),
            )
            folded_dq += 1
            continue
        if node.op_type == "Reshape" and inputs_const:
            data, shape = consts[node.input[0]], consts[node.input[1]].astype(np.int64)
            if _attr(node, "allowzero", 0) == 0:
                shape = np.array([data.shape[i] if v == 0 else v for i, v in enumerate(shape)], np.int64)
            consts[node.output[0]] = np.ascontiguousarray(data.reshape(tuple(int(v) for v in shape)))
            folded_reshape += 1
            continue
        keep.append(node)
    produced = {o for n in keep for o in n.output}
    used = {i for n in keep for i in n.input} | {o.name for o in graph.output}
    new_inits = [
        numpy_helper.from_array(arr, name)
        for name, arr in consts.items()
        if name in used and name not in produced
    ]
    del graph.node[:]
    graph.node.extend(keep)
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    return folded_dq, folded_reshape


def _drop_initializer_inputs(graph: onnx.GraphProto) -> None:
    """Graph inputs that are initializers (weights, SFace's scalar_op1/2) are not real inputs."""
    init_names = {t.name for t in graph.initializer}
    used = {i for n in graph.node for i in n.input}
    real = [i for i in graph.input if i.name not in init_names and i.name in used]
    del graph.input[:]
    graph.input.extend(real)


def _make_batch_dynamic(graph: onnx.GraphProto) -> None:
    """Name the first dimension of every input and output "N"; refuse graphs that fix it inside."""
    consts = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type != "Reshape" or node.input[1] not in consts:
            continue
        shape = numpy_helper.to_array(consts[node.input[1]]).astype(np.int64)
        if shape.size and shape[0] == 1:
            # batch 1 written into an activation reshape: 0 copies the input's (batch) dimension.
            if _attr(node, "allowzero", 0) != 0:
                raise FacestreamError(f"Reshape {node.name!r} fixes the batch to 1 (allowzero=1)")
            users = [n for n in graph.node if node.input[1] in n.input]
            if any(n.op_type != "Reshape" for n in users):
                raise FacestreamError(f"Reshape {node.name!r} fixes the batch to 1 with a shared shape")
            shape[0] = 0
            consts[node.input[1]].CopyFrom(numpy_helper.from_array(shape, node.input[1]))
            log.debug("reshape %s: batch 1 -> 0 (copy input batch)", node.name)
        elif shape.size and shape[0] > 1:
            raise FacestreamError(f"Reshape {node.name!r} fixes the batch size to {shape[0]}")
    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = BATCH
    # Intermediate shapes were recorded for batch 1; onnxruntime infers them again.
    del graph.value_info[:]


def fold_model(
    model: onnx.ModelProto,
    card: ModelCard | None = None,
    dynamic_batch: bool = True,
) -> onnx.ModelProto:
    """Return a checked fp32 copy of `model` with its quantized constants folded."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    dq, rs = _fold_constants(graph)
    _drop_initializer_inputs(graph)
    left = [n.op_type for n in graph.node if n.op_type in ("DequantizeLinear", "QuantizeLinear")]
    if left:
        raise FacestreamError(f"{len(left)} (De)QuantizeLinear nodes act on activations; cannot fold")
    for t in graph.initializer:
        if t.data_type not in (TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32):
            raise FacestreamError(f"initializer {t.name!r} is still of ONNX type {t.data_type}")
    if dynamic_batch:
        _make_batch_dynamic(graph)
    opset = max((o.version for o in out.opset_import if o.domain in ("", "ai.onnx")), default=0)
    out.ir_version = max(out.ir_version, helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))
    out.producer_name = "facestream.embed.fold"
    del out.metadata_props[:]
    if card is not None:
        for key, value in card.to_props().items():
            out.metadata_props.add(key=key, value=value)
    try:
        onnx.checker.check_model(out, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise FacestreamError(f"folded model fails the ONNX checker: {str(exc).splitlines()[0]}") from exc
    log.info("folded %d DequantizeLinear and %d Reshape nodes; %d nodes left", dq, rs, len(graph.node))
    return out


def fold_file(src: Path, dst: Path, card: ModelCard | None = None, dynamic_batch: bool = True) -> None:
    """Fold the ONNX file `src` into `dst` (written directly: callers rename into place)."""
    try:
        model = onnx.load(str(src))
    except FileNotFoundError as exc:
        raise FacestreamError(f"model file {src} not found") from exc
    except Exception as exc:  # protobuf DecodeError and friends
        raise FacestreamError(f"{src} is not a readable ONNX file ({exc})") from exc
    onnx.save(fold_model(model, card, dynamic_batch), str(dst))
