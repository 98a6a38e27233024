"""The direct Keras -> ONNX writer on small graphs: every supported layer against Keras, clear refusals."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from bus.errors import FacestreamError

pytestmark = pytest.mark.train


def _randomise(model: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = []
        for v in layer.weights:
            shape = tuple(v.shape)
            if "variance" in v.path:
                values.append(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            else:
                values.append((rng.standard_normal(shape) * 0.3).astype(np.float32))
        layer.set_weights(values)


def _onnx_vs_keras(model: Any, x: np.ndarray) -> float:
    from trainer.onnx_direct import convert_graph

    sess = ort.InferenceSession(convert_graph(model).SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    want = np.asarray(model(x, training=False))
    assert got.shape == want.shape
    return float(np.abs(got - want).max())


def test_graph_layers_match_keras(tf: ModuleType) -> None:
    import keras

    L = keras.layers
    inp = keras.Input((15, 13, 3), name="input")  # odd sizes: 'same' pads one pixel more after
    x = L.ZeroPadding2D(((1, 0), (0, 2)))(inp)
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = L.BatchNormalization(epsilon=1e-4)(x)
    x = L.ReLU()(x)
    y = L.Conv2D(8, 1, activation="relu")(x)
    y = L.BatchNormalization(center=False, scale=False)(y)
    gate = L.GlobalAveragePooling2D(keepdims=True)(y)
    gate = L.Conv2D(8, 1, activation="sigmoid")(gate)
    y = L.Multiply()([y, gate])
    x = L.Activation("relu")(L.Add()([x, y, x]))
    x = L.MaxPooling2D(2)(x)
    feature_map = L.Conv2D(5, 1, activation="softmax")(x)
    x = L.AveragePooling2D(2)(x)
    flat = L.Flatten()(x)
    pooled = L.GlobalAveragePooling2D()(x)
    x = L.Dense(6)(L.Dropout(0.5)(flat))
    out = L.UnitNormalization()(L.Activation("softmax")(x))
    model = keras.Model(inp, out)
    _randomise(model, seed=1)
    assert _onnx_vs_keras(model, _batch(inp)) < 1e-5
    assert _onnx_vs_keras(keras.Model(inp, pooled), _batch(inp)) < 1e-5
    assert _onnx_vs_keras(keras.Model(inp, feature_map), _batch(inp)) < 1e-5  # 4-D output: NHWC again


def _batch(inp: Any) -> np.ndarray:
    return np.random.default_rng(0).uniform(-2, 2, (3, *inp.shape[1:])).astype(np.float32)


def test_unsupported_graphs_are_refused(tf: ModuleType) -> None:
    import keras

    from trainer.onnx_direct import convert_graph

    L = keras.layers
    inp = keras.Input((8, 8, 3), name="input")
    with pytest.raises(FacestreamError, match=r"LeakyReLU\) is not supported by the direct ONNX writer"):
        convert_graph(keras.Model(inp, L.LeakyReLU()(inp)))
    with pytest.raises(FacestreamError, match="only undilated, ungrouped convolutions"):
        convert_graph(keras.Model(inp, L.Conv2D(4, 3, dilation_rate=2)(inp)))
    with pytest.raises(FacestreamError, match="activation 'tanh' is not supported"):
        convert_graph(keras.Model(inp, L.Conv2D(4, 3, activation="tanh")(inp)))
    with pytest.raises(FacestreamError, match="Dense needs a Flatten before it"):
        convert_graph(keras.Model(inp, L.Dense(4)(inp)))
    shared = L.Conv2D(3, 1)
    with pytest.raises(FacestreamError, match="is used more than once"):
        convert_graph(keras.Model(inp, shared(shared(inp))))
    with pytest.raises(FacestreamError, match="one input and one output"):
        convert_graph(keras.Model(inp, [L.ReLU()(inp), L.ReLU()(inp)]))
