"""OpenFace nn4.small2 (Amos et al. 2016) as Keras-OpenFace built it, and its CSV weight files.

Keras-OpenFace (and deepface's OpenFace) exported the Torch model layer by layer to CSV:
`<layer>_w.csv` / `<layer>_b.csv` for convolutions (kernel in Torch's out, in, kh, kw order),
`<layer>_w/_b/_m/_v.csv` for batch norm (gamma, beta, running mean, running variance) and
`dense_w.csv` (128 x 736) / `dense_b.csv` for the last layer. Layer names and the graph
(LRN, L2 pooling, paddings) follow Keras-OpenFace so the published weights give its outputs.
Input: 96x96 RGB scaled to 0..1; output: 128-d unit vector.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import keras
import numpy as np

from bus.errors import FacestreamError
from bus.model_card import ModelCard
from trainer.nets.layers import LRN, L2Pool

L = keras.layers
EPS = 1e-5


def _conv_bn(
    x: Any, name: str, filters: int, kernel: int, strides: int = 1, pad: Any = None, suffix: str = ""
) -> Any:
    x = L.Conv2D(filters, kernel, strides=strides, name=f"{name}_conv{suffix}")(x)
    x = L.BatchNormalization(axis=3, epsilon=EPS, name=f"{name}_bn{suffix}")(x)
    x = L.ReLU()(x)
    if pad is not None:
        x = L.ZeroPadding2D(pad)(x)
    return x


def _branch(x: Any, name: str, reduce: int, out: int, kernel: int, strides: int = 1) -> Any:
    """1x1 reduction then a kxk convolution, each with batch norm (conv1/bn1, conv2/bn2)."""
    x = _conv_bn(x, name, reduce, 1, suffix="1", pad=kernel // 2)
    return _conv_bn(x, name, out, kernel, strides=strides, suffix="2")


def openface_nn4_small2() -> keras.Model:
    inp = keras.Input((96, 96, 3), name="input")
    x = L.ZeroPadding2D(3)(inp)
    x = L.Conv2D(64, 7, strides=2, name="conv1")(x)
    x = L.BatchNormalization(axis=3, epsilon=EPS, name="bn1")(x)
    x = L.ReLU()(x)
    x = L.ZeroPadding2D(1)(x)
    x = L.MaxPooling2D(3, strides=2)(x)
    x = LRN(name="lrn_1")(x)
    x = L.Conv2D(64, 1, name="conv2")(x)
    x = L.BatchNormalization(axis=3, epsilon=EPS, name="bn2")(x)
    x = L.ReLU()(x)
    x = L.ZeroPadding2D(1)(x)
    x = L.Conv2D(192, 3, name="conv3")(x)
    x = L.BatchNormalization(axis=3, epsilon=EPS, name="bn3")(x)
    x = L.ReLU()(x)
    x = LRN(name="lrn_2")(x)
    x = L.ZeroPadding2D(1)(x)
    x = L.MaxPooling2D(3, strides=2)(x)

    # inception 3a
    a3 = _branch(x, "inception_3a_3x3", 96, 128, 3)
    a5 = _branch(x, "inception_3a_5x5", 16, 32, 5)
    ap = L.MaxPooling2D(3, strides=2)(x)
    ap = _conv_bn(ap, "inception_3a_pool", 32, 1, pad=((3, 4), (3, 4)))
    a1 = _conv_bn(x, "inception_3a_1x1", 64, 1)
    x = L.Concatenate(axis=3)([a3, a5, ap, a1])

    # inception 3b
    b3 = _branch(x, "inception_3b_3x3", 96, 128, 3)
    b5 = _branch(x, "inception_3b_5x5", 32, 64, 5)
    bp = L2Pool(3, 3, name="l2pool_3b")(x)
    bp = _conv_bn(bp, "inception_3b_pool", 64, 1, pad=4)
    b1 = _conv_bn(x, "inception_3b_1x1", 64, 1)
    x = L.Concatenate(axis=3)([b3, b5, bp, b1])

    # inception 3c
    c3 = _branch(x, "inception_3c_3x3", 128, 256, 3, strides=2)
    c5 = _branch(x, "inception_3c_5x5", 32, 64, 5, strides=2)
    cp = L.MaxPooling2D(3, strides=2)(x)
    cp = L.ZeroPadding2D(((0, 1), (0, 1)))(cp)
    x = L.Concatenate(axis=3)([c3, c5, cp])

    # inception 4a
    d3 = _branch(x, "inception_4a_3x3", 96, 192, 3)
    d5 = _branch(x, "inception_4a_5x5", 32, 64, 5)
    dp = L2Pool(3, 3, name="l2pool_4a")(x)
    dp = _conv_bn(dp, "inception_4a_pool", 128, 1, pad=2)
    d1 = _conv_bn(x, "inception_4a_1x1", 256, 1)
    x = L.Concatenate(axis=3)([d3, d5, dp, d1])

    # inception 4e
    e3 = _branch(x, "inception_4e_3x3", 160, 256, 3, strides=2)
    e5 = _branch(x, "inception_4e_5x5", 64, 128, 5, strides=2)
    ep = L.MaxPooling2D(3, strides=2)(x)
    ep = L.ZeroPadding2D(((0, 1), (0, 1)))(ep)
    x = L.Concatenate(axis=3)([e3, e5, ep])

    # inception 5a
    f3 = _branch(x, "inception_5a_3x3", 96, 384, 3)
    fp = L2Pool(3, 3, name="l2pool_5a")(x)
    fp = _conv_bn(fp, "inception_5a_pool", 96, 1, pad=1)
    f1 = _conv_bn(x, "inception_5a_1x1", 256, 1)
    x = L.Concatenate(axis=3)([f3, fp, f1])

    # inception 5b
    g3 = _branch(x, "inception_5b_3x3", 96, 384, 3)
    gp = L.MaxPooling2D(3, strides=2)(x)
    gp = _conv_bn(gp, "inception_5b_pool", 96, 1, pad=1)
    g1 = _conv_bn(x, "inception_5b_1x1", 256, 1)
    x = L.Concatenate(axis=3)([g3, gp, g1])

    x = L.AveragePooling2D(3, strides=1)(x)
    x = L.Flatten()(x)
    x = L.Dense(128, name="dense_layer")(x)
    out = L.UnitNormalization(name="norm_layer")(x)
    return keras.Model(inp, out, name="openface_nn4_small2")


def openface_card(threshold: float = 0.90, source: str = "") -> ModelCard:
    return ModelCard(
        model_id="openface-nn4.small2-128d",
        input_width=96,
        input_height=96,
        embedding_dim=128,
        color_order="RGB",
        layout="NHWC",
        mean=(0.0, 0.0, 0.0),
        std=(255.0, 255.0, 255.0),
        threshold=threshold,  # deepface's cosine-distance cut-off 0.10
        alignment="5point",
        source=source or "OpenFace nn4.small2.v1 (Amos et al. 2016), Keras-OpenFace CSV weights",
    )


def weight_files(model: keras.Model) -> dict[str, list[str]]:
    """Layer name -> its CSV file stems, for every layer that has weights."""
    out: dict[str, list[str]] = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        if isinstance(layer, L.Conv2D):
            out[layer.name] = [f"{layer.name}_w", f"{layer.name}_b"]
        elif isinstance(layer, L.BatchNormalization):
            out[layer.name] = [f"{layer.name}_{s}" for s in "wbmv"]
        elif isinstance(layer, L.Dense):
            out[layer.name] = ["dense_w", "dense_b"]
        else:
            raise FacestreamError(f"no CSV layout known for layer {layer.name}")
    return out


def read_csv(path: Path) -> np.ndarray:
    """All numbers of one CSV file, flat (row breaks carry no meaning in these files)."""
    if not path.is_file():
        raise FacestreamError(f"OpenFace weight file missing: {path}")
    text = path.read_text().replace(",", "\n")
    try:
        return np.loadtxt(io.StringIO(text), dtype=np.float32, ndmin=1)
    except ValueError as exc:
        raise FacestreamError(f"{path}: not a CSV of numbers ({exc})") from exc


def torch_to_keras(layer: Any, stem: str, values: np.ndarray, target_shape: tuple[int, ...]) -> np.ndarray:
    """Reorder one flat CSV array into the Keras weight of that shape."""
    if values.size != int(np.prod(target_shape)):
        raise FacestreamError(f"{stem}.csv holds {values.size} numbers, {layer.name} needs {target_shape}")
    if stem.endswith("_w") and len(target_shape) == 4:  # (kh, kw, in, out) <- (out, in, kh, kw)
        kh, kw, cin, cout = target_shape
        return values.reshape(cout, cin, kh, kw).transpose(2, 3, 1, 0)
    if (
        stem.endswith("_w") and len(target_shape) == 2 and isinstance(layer, L.Dense)
    ):  # (in, out) <- (out, in)
        cin, cout = target_shape
        return values.reshape(cout, cin).T
    return values.reshape(target_shape)


def load_openface_csv(model: keras.Model, folder: Path) -> int:
    """Set every weighted layer from `folder`; returns the number of layers loaded."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacestreamError(
            f"OpenFace weights folder not found: {folder} (the Keras-OpenFace 'weights' folder)"
        )
    files = weight_files(model)
    for name, stems in files.items():
        layer = model.get_layer(name)
        arrays = [
            torch_to_keras(layer, stem, read_csv(folder / f"{stem}.csv"), tuple(w.shape))
            for stem, w in zip(stems, layer.weights, strict=True)
        ]
        layer.set_weights(arrays)
    return len(files)


def keras_to_torch(layer: Any, stem: str, value: np.ndarray) -> np.ndarray:
    """The inverse of torch_to_keras, as (rows, cols) for writing a CSV in the public layout."""
    if stem.endswith("_w") and value.ndim == 4:
        return value.transpose(3, 2, 0, 1).reshape(value.shape[3], -1)
    if stem.endswith("_w") and value.ndim == 2 and isinstance(layer, L.Dense):
        return np.ascontiguousarray(value.T)
    return value.reshape(1, -1)
