"""Write a plain layer-chain Keras CNN straight to ONNX, for models too big for tf2onnx here.

tf2onnx freezes the weights and runs graph passes that copy them many times: measured on this
machine, one 100 MB convolution peaked at 2.8 GB (5.9 GB with its optimisers) and VGG-Face
(138 M parameters, 553 MB) ran out of 24 GB. Here each layer maps to one or two ONNX nodes and
each weight is copied once. Supported: ZeroPadding2D, Conv2D (relu/linear/softmax), MaxPooling2D,
Dropout, Flatten, Dense, Activation, UnitNormalization: what VGG-Face uses. The model input
stays NHWC (like tf2onnx's output); one Transpose turns it into ONNX's NCHW.
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


def _activation(g: _Graph, x: str, fn: Any, base: str, channel_axis: int) -> str:
    name = getattr(fn, "__name__", str(fn))
    if name == "linear":
        return x
    if name == "relu":
        return g.node("Relu", [x], f"{base}_relu")
    if name == "softmax":
        return g.node("Softmax", [x], f"{base}_softmax", axis=channel_axis)
    raise FacestreamError(f"layer {base}: activation {name!r} is not supported by the direct ONNX writer")


def _chain(model: keras.Model) -> list[Any]:
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    previous = model.inputs[0]
    for layer in layers:
        if layer.input is not previous:
            raise FacestreamError(f"{model.name}: layer {layer.name} is not a simple chain; use tf2onnx")
        previous = layer.output
    if model.outputs[0] is not previous:
        raise FacestreamError(f"{model.name}: the output is not the last layer of the chain")
    return layers


def convert_chain(model: keras.Model) -> onnx.ModelProto:
    g = _Graph()
    x = g.node("Transpose", ["input"], "to_nchw", perm=[0, 3, 1, 2])
    nchw = True
    for layer in _chain(model):
        base = layer.name
        if isinstance(layer, L.Dropout):
            continue
        if isinstance(layer, L.ZeroPadding2D):
            (top, bottom), (left, right) = layer.padding
            pads = np.array([0, 0, top, left, 0, 0, bottom, right], np.int64)
            x = g.node("Pad", [x, g.const(f"{base}_pads", pads)], base, mode="constant")
        elif isinstance(layer, L.Conv2D):
            if layer.padding != "valid" or tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1:
                raise FacestreamError(f"layer {base}: only 'valid', undilated convolutions are supported")
            kernel, *bias = layer.get_weights()
            inputs = [x, g.const(f"{base}_W", kernel.transpose(3, 2, 0, 1))]
            if bias:
                inputs.append(g.const(f"{base}_B", bias[0]))
            x = g.node(
                "Conv", inputs, base, kernel_shape=list(layer.kernel_size), strides=list(layer.strides)
            )
            x = _activation(g, x, layer.activation, base, channel_axis=1)
        elif isinstance(layer, L.MaxPooling2D):
            if layer.padding != "valid":
                raise FacestreamError(f"layer {base}: only 'valid' pooling is supported")
            x = g.node("MaxPool", [x], base, kernel_shape=list(layer.pool_size), strides=list(layer.strides))
        elif isinstance(layer, L.Flatten):
            if nchw:  # Keras flattens in H, W, C order
                x = g.node("Transpose", [x], "to_nhwc", perm=[0, 2, 3, 1])
                nchw = False
            x = g.node("Flatten", [x], base, axis=1)
        elif isinstance(layer, L.Dense):
            if nchw:
                raise FacestreamError(f"layer {base}: Dense needs a Flatten before it")
            kernel, *bias = layer.get_weights()
            x = g.node("MatMul", [x, g.const(f"{base}_W", kernel)], base)
            if bias:
                x = g.node("Add", [x, g.const(f"{base}_B", bias[0])], f"{base}_bias")
            x = _activation(g, x, layer.activation, base, channel_axis=-1)
        elif isinstance(layer, L.Activation):
            x = _activation(g, x, layer.activation, base, channel_axis=1 if nchw else -1)
        elif isinstance(layer, L.UnitNormalization):
            if nchw:
                raise FacestreamError(f"layer {base}: UnitNormalization needs a Flatten before it")
            x = g.node("LpNormalization", [x], base, axis=-1, p=2)
        else:
            raise FacestreamError(
                f"layer {base} ({type(layer).__name__}) is not supported by the direct ONNX writer"
            )
    out_name = model.layers[-1].name
    g.nodes.append(helper.make_node("Identity", [x], [out_name], name="output"))
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
