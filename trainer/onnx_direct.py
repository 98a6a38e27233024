"""Write a Keras CNN straight to ONNX, for models too big for tf2onnx here.

tf2onnx freezes the weights and runs graph passes that copy them many times: measured on this
machine, one 100 MB convolution peaked at 2.8 GB (5.9 GB with its optimisers), VGG-Face
(138 M parameters, 553 MB) ran out of 24 GB, and the VGGFace2 ResNet50 (94 MB) peaked at 7.3 GB
and took 36 s. Here each layer maps to one or two ONNX nodes and each weight is copied once.

Supported layers: what VGG-Face and the VGGFace2 ResNet50/SENet50 use. ZeroPadding2D, Conv2D
('valid' or 'same'), BatchNormalization, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
Activation / ReLU (relu, sigmoid, softmax, linear), Add, Multiply, Dropout, Flatten, Dense,
UnitNormalization; any graph of them with one input and one output, each layer used once.
The model input stays NHWC (like tf2onnx's output); one Transpose turns it into ONNX's NCHW, and
every 4-D value inside is NCHW.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bus.errors import FacestreamError
from trainer.onnx_export import OPSET

L = keras.layers


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, base: str, value: np.ndarray) -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], base: str, **attrs: Any) -> str:
        out = self.name(base)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _activation(g: _Graph, x: str, fn: Any, base: str, rank: int) -> str:
    name = getattr(fn, "__name__", str(fn))
    if name == "linear":
        return x
    if name == "relu":
        return g.node("Relu", [x], f"{base}_relu")
    if name == "sigmoid":
        return g.node("Sigmoid", [x], f"{base}_sigmoid")
    if name == "softmax":  # over channels: axis 1 of NCHW values, the last of flat ones
        return g.node("Softmax", [x], f"{base}_softmax", axis=1 if rank == 4 else -1)
    raise FacestreamError(f"layer {base}: activation {name!r} is not supported by the direct ONNX writer")


def _spatial(layer: Any, what: str) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise FacestreamError(f"layer {layer.name}: only channels_last {what} is supported")


def _conv(g: _Graph, x: str, layer: Any) -> str:
    _spatial(layer, "convolution")
    if layer.padding not in ("valid", "same") or tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1:
        raise FacestreamError(f"layer {layer.name}: only undilated, ungrouped convolutions are supported")
    kernel, *bias = layer.get_weights()
    inputs = [x, g.const(f"{layer.name}_W", kernel.transpose(3, 2, 0, 1))]
    if bias:
        inputs.append(g.const(f"{layer.name}_B", bias[0]))
    # TensorFlow's 'same' puts the odd pixel of padding after (bottom/right): ONNX SAME_UPPER
    pad = {"auto_pad": "SAME_UPPER"} if layer.padding == "same" else {}
    attrs = {"kernel_shape": list(layer.kernel_size), "strides": list(layer.strides), **pad}
    y = g.node("Conv", inputs, layer.name, **attrs)
    return _activation(g, y, layer.activation, layer.name, rank=4)


def _batch_norm(g: _Graph, x: str, layer: Any) -> str:
    if layer.axis not in (-1, 3):
        raise FacestreamError(f"layer {layer.name}: batch norm over axis {layer.axis}; only channels (-1)")
    n = int(layer.moving_mean.shape[0])
    ones, zeros = np.ones(n, np.float32), np.zeros(n, np.float32)
    gamma = np.asarray(layer.gamma.numpy(), np.float32) if layer.scale else ones
    beta = np.asarray(layer.beta.numpy(), np.float32) if layer.center else zeros
    mean, var = (np.asarray(v.numpy(), np.float32) for v in (layer.moving_mean, layer.moving_variance))
    values = {"scale": gamma, "B": beta, "mean": mean, "var": var}  # ONNX's input order
    names = [g.const(f"{layer.name}_{k}", v) for k, v in values.items()]
    return g.node("BatchNormalization", [x, *names], layer.name, epsilon=float(layer.epsilon))


def _pool(g: _Graph, x: str, layer: Any, op: str) -> str:
    _spatial(layer, "pooling")
    if layer.padding != "valid":
        raise FacestreamError(f"layer {layer.name}: only 'valid' pooling is supported")
    return g.node(op, [x], layer.name, kernel_shape=list(layer.pool_size), strides=list(layer.strides))


def _flat(g: _Graph, x: str, rank: int, base: str) -> str:
    if rank == 4:  # Keras flattens in H, W, C order
        x = g.node("Transpose", [x], f"{base}_to_nhwc", perm=[0, 2, 3, 1])
    return g.node("Flatten", [x], base, axis=1)


def _layer(g: _Graph, layer: Any, xs: list[str], ranks: list[int]) -> tuple[str, int]:
    """ONNX nodes for one layer: (output name, output rank)."""
    x, rank, base = xs[0], ranks[0], layer.name
    if len(xs) > 1 and not isinstance(layer, L.Add | L.Multiply):
        raise FacestreamError(f"layer {base} ({type(layer).__name__}) has several inputs")
    if isinstance(layer, L.Dropout):
        return x, rank
    if isinstance(layer, L.ZeroPadding2D | L.Conv2D | L.BatchNormalization | L.MaxPooling2D) and rank != 4:
        raise FacestreamError(f"layer {base} needs a 4-D input")
    if isinstance(layer, L.ZeroPadding2D):
        (top, bottom), (left, right) = layer.padding
        pads = np.array([0, 0, top, left, 0, 0, bottom, right], np.int64)
        return g.node("Pad", [x, g.const(f"{base}_pads", pads)], base, mode="constant"), 4
    if isinstance(layer, L.Conv2D):
        return _conv(g, x, layer), 4
    if isinstance(layer, L.BatchNormalization):
        return _batch_norm(g, x, layer), 4
    if isinstance(layer, L.MaxPooling2D):
        return _pool(g, x, layer, "MaxPool"), 4
    if isinstance(layer, L.AveragePooling2D):
        return _pool(g, x, layer, "AveragePool"), 4
    if isinstance(layer, L.GlobalAveragePooling2D):
        _spatial(layer, "pooling")
        y = g.node("GlobalAveragePool", [x], base)
        return (y, 4) if layer.keepdims else (g.node("Flatten", [y], f"{base}_flat", axis=1), 2)
    if isinstance(layer, L.Flatten):
        return _flat(g, x, rank, base), 2
    if isinstance(layer, L.Dense):
        if rank != 2:
            raise FacestreamError(f"layer {base}: Dense needs a Flatten before it")
        kernel, *bias = layer.get_weights()
        y = g.node("MatMul", [x, g.const(f"{base}_W", kernel)], base)
        if bias:
            y = g.node("Add", [y, g.const(f"{base}_B", bias[0])], f"{base}_bias")
        return _activation(g, y, layer.activation, base, rank=2), 2
    if isinstance(layer, L.Activation):
        return _activation(g, x, layer.activation, base, rank), rank
    if isinstance(layer, L.ReLU):
        if layer.max_value is not None or layer.negative_slope or layer.threshold:
            raise FacestreamError(f"layer {base}: only a plain ReLU is supported")
        return g.node("Relu", [x], base), rank
    if isinstance(layer, L.Add | L.Multiply):
        if len(set(ranks)) != 1:
            raise FacestreamError(f"layer {base}: inputs of different ranks {ranks}")
        op = "Add" if isinstance(layer, L.Add) else "Mul"
        for i, other in enumerate(xs[1:]):
            x = g.node(op, [x, other], base if i == len(xs) - 2 else f"{base}_part")
        return x, rank
    if isinstance(layer, L.UnitNormalization):
        if rank != 2:
            raise FacestreamError(f"layer {base}: UnitNormalization needs a Flatten before it")
        return g.node("LpNormalization", [x], base, axis=-1, p=2), 2
    raise FacestreamError(f"layer {base} ({type(layer).__name__}) is not supported by the direct ONNX writer")


def _tensors(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def convert_graph(model: keras.Model) -> onnx.ModelProto:
    """The model as ONNX (opset 17, IR 8): input "input" NHWC with a dynamic batch, one output."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise FacestreamError(f"{model.name}: the direct ONNX writer needs one input and one output")
    g = _Graph()
    values: dict[int, tuple[str, int]] = {
        id(model.inputs[0]): (g.node("Transpose", ["input"], "to_nchw", perm=[0, 3, 1, 2]), 4)
    }
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if len(layer._inbound_nodes) != 1:  # Keras' .input/.output would silently give the first use
            raise FacestreamError(f"layer {layer.name} is used more than once; not supported")
        inputs, output = _tensors(layer.input), layer.output
        if any(id(t) not in values for t in inputs):
            raise FacestreamError(f"{model.name}: layer {layer.name} reads a value from outside the model")
        names, ranks = zip(*(values[id(t)] for t in inputs), strict=True)
        values[id(output)] = _layer(g, layer, list(names), list(ranks))
    if id(model.outputs[0]) not in values:
        raise FacestreamError(f"{model.name}: the output is not computed by the model's layers")
    result, rank = values[id(model.outputs[0])]
    if rank == 4:  # back to Keras' NHWC
        result = g.node("Transpose", [result], "to_nhwc", perm=[0, 2, 3, 1])
    out_name = model.layers[-1].name
    g.nodes.append(helper.make_node("Identity", [result], [out_name], name="output"))
    in_shape: list[str | int | None] = ["batch", *(int(d) for d in model.input_shape[1:])]
    out_shape: list[str | int | None] = [
        "batch",
        *(None if d is None else int(d) for d in model.output_shape[1:]),
    ]
    graph = helper.make_graph(
        g.nodes,
        model.name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)],
        initializer=g.inits,
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="facestream"
    )
    proto.ir_version = 8  # opset 17 with IR 8: what onnxruntime 1.3x reads
    return proto
