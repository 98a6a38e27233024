"""Weight files in the Keras 2 `save_weights` HDF5 layout, written by the tests (the public files are
not on PyPI): root `layer_names` (every layer, weighted or not), per layer a group with a
`weight_names` attribute and one dataset per name. Names with "/" become nested groups, as h5py
made them for Keras 2."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

Layer = tuple[str, Sequence[tuple[str, np.ndarray]]]  # (layer name, [(weight name, array)])


def write_keras2_h5(path: Path, layers: Sequence[Layer]) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.1.5"
        f.attrs["layer_names"] = [name.encode() for name, _ in layers]
        for name, weights in layers:
            group = f.create_group(name) if name not in f else f[name]
            group.attrs["weight_names"] = [w.encode() for w, _ in weights]
            for w, value in weights:
                group.create_dataset(w, data=value)


def keras2_auto_name(layer: Any, counts: Counter[str]) -> str:
    """What Keras 2 called an unnamed layer: snake-case class name + a per-class counter."""
    kind = re.sub(r"(?<=[a-z])(?=[A-Z0-9])", "_", type(layer).__name__).lower().replace("_2d", "2d")
    kind = "input" if kind == "input_layer" else kind
    counts[kind] += 1
    return f"{kind}_{counts[kind]}"


def random_value(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Values that keep a deep ReLU net's activations in range: He kernels, BN stats near identity."""
    if kind == "kernel":
        value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
    elif kind in ("gamma", "moving_variance"):
        value = rng.uniform(0.5, 1.5, shape)
    elif kind in ("beta", "moving_mean"):
        value = rng.uniform(-0.1, 0.1, shape)
    else:  # bias
        value = rng.uniform(-0.05, 0.05, shape)
    return value.astype(np.float32)


def keras_vggface_layers(net: Any, batch: np.ndarray, seed: int) -> list[Layer]:
    """A VGGFace2 net's layers as keras-vggface's weight files hold them, with random values.

    Names as keras-vggface gives them ("conv1/7x7_s2/bn", weights "conv1/7x7_s2/bn/gamma:0");
    unnamed layers as Keras 2 named them. The values are set on `net` too, and each batch norm's
    moving statistics are then measured on `batch` (one training-mode pass with momentum 0).
    """
    import keras

    from trainer.nets.keras2_h5 import variable_name
    from trainer.nets.vggface2 import public_name

    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if layer.weights:
            layer.set_weights(
                [random_value(variable_name(v.path), tuple(v.shape), rng) for v in layer.weights]
            )
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    net(batch, training=True)
    counts: Counter[str] = Counter()
    layers: list[Layer] = []
    for layer in net.layers:
        if not layer.weights:
            layers.append((layer.name if layer.name == "avg_pool" else keras2_auto_name(layer, counts), []))
            continue
        name = public_name(layer.name)
        named = [f"{name}/{variable_name(v.path)}:0" for v in layer.weights]
        layers.append((name, list(zip(named, layer.get_weights(), strict=True))))
    return layers
