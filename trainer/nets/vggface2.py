"""VGGFace2 ResNet50 and SE-ResNet50 (Cao et al. 2018) as keras-vggface defines them, and its weights.

Both nets: 7x7/2 stem, max pool, bottleneck stages of 3, 4, 6, 3 blocks (the stride sits on each
stage's first 1x1 convolution, Caffe style), bias-free convolutions each with batch norm, a 7x7
average pool and, optionally, the 8631-way softmax `classifier`. SENet50 adds squeeze-excitation
(global average, 1x1 down to C/16, ReLU, 1x1 up, sigmoid, scale) after each block's last batch
norm, and uses batch-norm epsilon 1e-4 where ResNet50 keeps Keras' 1e-3.

Layer names are keras-vggface's (= the Caffe models'), with "/" written "." because Keras 3
refuses "/" in names: file layer "conv2_1_1x1_reduce/bn" loads into layer "conv2_1_1x1_reduce.bn".
The weight files (`rcmalli_vggface_tf_[notop_]resnet50.h5` / `..._senet50.h5`) are Keras 2
`save_weights` files; they are read by layer name, so their layer order does not matter.

Descriptor: the pooled 2048-d vector, L2-normalised. Input: 224x224 BGR minus the VGGFace2 mean
("version 2" preprocessing of keras-vggface).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, cast

import keras

from bus.errors import FacestreamError
from bus.model_card import ModelCard
from trainer.nets.keras2_h5 import read_h5_layers, variable_name

L = keras.layers
Arch = Literal["resnet50", "senet50"]
ARCHS: tuple[Arch, ...] = ("resnet50", "senet50")
MEAN_BGR = (91.4953, 103.8827, 131.0912)  # keras-vggface preprocess_input(version=2), B, G, R
CLASSES = 8631  # VGGFace2 training identities
DIM = 2048
# (stage, bottleneck width, blocks); each block's output has 4 x width channels
STAGES = ((2, 64, 3), (3, 128, 4), (4, 256, 6), (5, 512, 3))
EPSILON = {"resnet50": 1e-3, "senet50": 1e-4}
SE_RATIO = 16
TOP = "classifier"
STEM = "conv1/7x7_s2"


def as_arch(text: str) -> Arch:
    if text not in ARCHS:
        raise FacestreamError(f"VGGFace2 architecture must be one of {', '.join(ARCHS)}, got {text!r}")
    return cast(Arch, text)


def keras_name(public: str) -> str:
    return public.replace("/", ".")


def public_name(name: str) -> str:
    return name.replace(".", "/")


def _conv_bn(x: Any, name: str, filters: int, kernel: int, strides: int, eps: float) -> Any:
    padding = "same" if kernel > 1 else "valid"
    x = L.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False, name=keras_name(name))(x)
    return L.BatchNormalization(axis=3, epsilon=eps, name=keras_name(f"{name}/bn"))(x)


def _squeeze_excite(x: Any, prefix: str) -> Any:
    channels = int(x.shape[-1])
    se = L.GlobalAveragePooling2D(keepdims=True)(x)
    se = L.Conv2D(channels // SE_RATIO, 1, name=f"{prefix}_1x1_down")(se)
    se = L.Activation("relu")(se)
    se = L.Conv2D(channels, 1, name=f"{prefix}_1x1_up")(se)
    se = L.Activation("sigmoid")(se)
    return L.Multiply()([x, se])


def _bottleneck(x: Any, stage: int, block: int, width: int, strides: int, arch: Arch) -> Any:
    """1x1 reduce -> 3x3 -> 1x1 increase (-> squeeze-excite), plus the shortcut, then ReLU."""
    eps, prefix = EPSILON[arch], f"conv{stage}_{block}"
    y = L.Activation("relu")(_conv_bn(x, f"{prefix}_1x1_reduce", width, 1, strides, eps))
    y = L.Activation("relu")(_conv_bn(y, f"{prefix}_3x3", width, 3, 1, eps))
    y = _conv_bn(y, f"{prefix}_1x1_increase", 4 * width, 1, 1, eps)
    if arch == "senet50":
        y = _squeeze_excite(y, prefix)
    shortcut = _conv_bn(x, f"{prefix}_1x1_proj", 4 * width, 1, strides, eps) if block == 1 else x
    return L.Activation("relu")(L.Add()([y, shortcut]))


def vggface2_net(arch: Arch, include_top: bool = False, classes: int = CLASSES) -> keras.Model:
    """The network up to the 7x7 average pool (1x1x2048), or through the softmax classifier."""
    as_arch(arch)
    inp = keras.Input((224, 224, 3), name="input")
    x = _conv_bn(inp, STEM, 64, 7, 2, EPSILON[arch])
    x = L.Activation("relu")(x)
    x = L.MaxPooling2D(3, strides=2)(x)
    for stage, width, blocks in STAGES:
        for block in range(1, blocks + 1):
            strides = 2 if block == 1 and stage > 2 else 1
            x = _bottleneck(x, stage, block, width, strides, arch)
    x = L.AveragePooling2D(7, name="avg_pool")(x)
    if include_top:
        x = L.Flatten(name="flatten")(x)
        x = L.Dense(classes, activation="softmax", name=TOP)(x)
    return keras.Model(inp, x, name=f"vggface2_{arch}")


def vggface2_descriptor(net: keras.Model) -> keras.Model:
    """The embedding network sharing `net`'s layers: the pooled 2048-d vector as a unit vector."""
    x = L.Flatten(name="descriptor")(net.get_layer("avg_pool").output)
    out = L.UnitNormalization(name="l2norm")(x)
    return keras.Model(net.input, out, name=f"{net.name}_{DIM}d")


def vggface2_card(arch: Arch, threshold: float = 0.5, source: str = "") -> ModelCard:
    return ModelCard(
        model_id=f"vggface2-{arch}-{DIM}d",
        input_width=224,
        input_height=224,
        embedding_dim=DIM,
        color_order="BGR",
        layout="NHWC",
        mean=MEAN_BGR,
        std=(1.0, 1.0, 1.0),
        # the transfer-learning notebook's rule: cosine distance <= 0.5, i.e. similarity >= 0.5
        threshold=threshold,
        # keras-vggface is fed the detector's box, resized (VGGFace2 faces are loose, unaligned crops)
        alignment="box",
        source=source or f"VGGFace2 {arch} (Cao et al. 2018), keras-vggface weights",
    )


def _ordered(layer: Any, weights: list[tuple[str, Any]], path: Path) -> list[Any]:
    """The stored arrays in the layer's variable order (by variable name; by position if unnamed)."""
    by_name = {variable_name(w): a for w, a in weights}
    want = [variable_name(v.path) for v in layer.weights]
    arrays = [by_name[n] for n in want] if set(by_name) == set(want) else [a for _, a in weights]
    got = [tuple(a.shape) for a in arrays]
    need = [tuple(v.shape) for v in layer.weights]
    if got != need:
        raise FacestreamError(
            f"{path}: layer {public_name(layer.name)} holds shapes {got}, the net needs {need}"
        )
    return arrays


def _check_arch(stored: dict[str, Any], path: Path, arch: Arch) -> None:
    """A keras-vggface file of the other net is named as such, before any net is built."""
    if STEM in stored:
        found = "senet50" if any(n.endswith("_1x1_down") for n in stored) else "resnet50"
        if found != arch:
            raise FacestreamError(
                f"{path} holds {found} weights, not {arch}: export it with `facestream export {found}`"
            )


def _check_names(stored: dict[str, Any], targets: dict[str, Any], path: Path, arch: Arch) -> None:
    extra = sorted(n for n in stored if n not in targets and n != TOP)
    missing = [n for n in targets if n not in stored]
    problems = []
    if missing:
        hint = " (this file has no top)" if missing == [TOP] else ""
        problems.append(f"{len(missing)} layers missing, e.g. {', '.join(missing[:3])}{hint}")
    if extra:
        problems.append(f"{len(extra)} unknown layers, e.g. {', '.join(extra[:3])}")
    if problems:
        raise FacestreamError(f"{path} is not a keras-vggface {arch} weight file: {'; '.join(problems)}")


def load_vggface2_h5(net: keras.Model, path: Path, arch: Arch) -> int:
    """Set every weighted layer of `net` from the file, by name; returns how many were set.

    A file's classifier is skipped when `net` has no top; any other layer the net lacks (or the
    file lacks) is an error, so SENet50 weights never load silently into ResNet50.
    """
    return _set_weights(net, dict(read_h5_layers(path, f"{arch} weight")), path, arch)


def _set_weights(net: keras.Model, stored: dict[str, Any], path: Path, arch: Arch) -> int:
    _check_arch(stored, path, arch)
    targets = {public_name(layer.name): layer for layer in net.layers if layer.weights}
    _check_names(stored, targets, path, arch)
    for name, layer in targets.items():
        layer.set_weights(_ordered(layer, stored[name], path))
    return len(targets)


def vggface2_from_h5(arch: Arch, path: Path) -> keras.Model:
    """The net with a weight file's values, with the classifier when the file has one (read once)."""
    stored = dict(read_h5_layers(path, f"{arch} weight"))
    _check_arch(stored, path, arch)
    net = vggface2_net(arch, include_top=TOP in stored)
    _set_weights(net, stored, path, arch)
    return net
