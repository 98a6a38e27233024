"""Compact CNN embedders for the two training commands: small enough to train on a laptop CPU."""

from __future__ import annotations

from collections.abc import Sequence

import keras

L = keras.layers


def small_embedder(
    input_shape: tuple[int, int, int],
    dim: int,
    widths: Sequence[int],
    name: str,
    dense: int = 128,
    flatten: bool = False,
) -> keras.Model:
    """conv-BN-ReLU blocks with 2x2 pooling, then global average (or flatten: keeps where strokes
    are, which tells an 8 from a 3), dense, L2-normalised output."""
    inp = keras.Input(input_shape, name="input")
    x = inp
    for i, width in enumerate(widths):
        x = L.Conv2D(width, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = L.BatchNormalization(name=f"bn{i + 1}")(x)
        x = L.ReLU(name=f"relu{i + 1}")(x)
        x = L.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = L.Flatten(name="flatten")(x) if flatten else L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(dense, activation="relu", name="fc1")(x)
    x = L.Dense(dim, name="embedding")(x)
    out = L.UnitNormalization(name="l2norm")(x)
    return keras.Model(inp, out, name=name)


def digits_net(dim: int = 32) -> keras.Model:
    """28x28 grey digits (pixels / 255) -> dim-d unit vector."""
    return small_embedder((28, 28, 1), dim, (32, 64, 128), "digits_embedder", flatten=True)


def faces_net(dim: int = 128, size: int = 64) -> keras.Model:
    """size x size RGB aligned faces (pixels - 127.5) / 128 -> dim-d unit vector."""
    return small_embedder((size, size, 3), dim, (32, 64, 128, 256), "faces_small_embedder", dense=256)
