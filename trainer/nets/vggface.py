"""VGG-Face (Parkhi, Vedaldi, Zisserman, BMVC 2015) and the public `vgg_face_weights.h5` layout.

The weight file most people have is the Keras 2 `save_weights` HDF5 of the Sequential model
deepface builds (ZeroPadding2D + 13 conv, fc6/fc7/fc8 as 7x7 / 1x1 convolutions, 2622-way softmax):
a `layer_names` attribute listing every layer in order, and per layer a group whose
`weight_names` attribute names its kernel and bias datasets. Keras 2 loaded it by position among
the layers that have weights; so does this loader, with shape checks and clear errors.

The face descriptor is the 2622-d fc8 output before the softmax (fc7, 4096-d, on request),
L2-normalised. Input: 224x224 BGR pixels minus the VGG-Face mean (Caffe/deepface convention).
"""

from __future__ import annotations

from pathlib import Path

import keras

from bus.errors import FacestreamError
from bus.model_card import ModelCard
from trainer.nets.keras2_h5 import read_h5_layers

L = keras.layers
BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))
# Per-channel means in B, G, R order (deepface's "VGGFace" normalisation for this weight file).
MEAN_BGR = (93.5940, 104.7624, 129.1863)
DESCRIPTORS = {"fc8": 2622, "fc7": 4096}


def vggface_classifier() -> keras.Model:
    """The full network as trained (softmax over the 2622 training identities)."""
    inp = keras.Input((224, 224, 3), name="input")
    x = inp
    for block, (convs, width) in enumerate(BLOCKS, start=1):
        for i in range(1, convs + 1):
            x = L.ZeroPadding2D(1, name=f"pad{block}_{i}")(x)
            x = L.Conv2D(width, 3, activation="relu", name=f"conv{block}_{i}")(x)
        x = L.MaxPooling2D(2, strides=2, name=f"pool{block}")(x)
    x = L.Conv2D(4096, 7, activation="relu", name="fc6")(x)
    x = L.Dropout(0.5, name="drop6")(x)
    x = L.Conv2D(4096, 1, activation="relu", name="fc7")(x)
    x = L.Dropout(0.5, name="drop7")(x)
    x = L.Conv2D(2622, 1, name="fc8")(x)
    x = L.Flatten(name="flatten")(x)
    out = L.Activation("softmax", name="prob")(x)
    return keras.Model(inp, out, name="vggface")


def vggface_descriptor(classifier: keras.Model, layer: str = "fc8") -> keras.Model:
    """The embedding network sharing the classifier's layers: flatten(layer) -> unit vector."""
    if layer not in DESCRIPTORS:
        raise FacestreamError(
            f"VGG-Face descriptor layer must be one of {', '.join(DESCRIPTORS)}, got {layer!r}"
        )
    x = L.Flatten(name=f"flatten_{layer}")(classifier.get_layer(layer).output)
    out = L.UnitNormalization(name="l2norm")(x)
    return keras.Model(classifier.input, out, name=f"vggface_{layer}")


def vggface_card(layer: str = "fc8", threshold: float | None = None, source: str = "") -> ModelCard:
    return ModelCard(
        model_id=f"vggface-{layer}-{DESCRIPTORS[layer]}d",
        input_width=224,
        input_height=224,
        embedding_dim=DESCRIPTORS[layer],
        color_order="BGR",
        layout="NHWC",
        mean=MEAN_BGR,
        std=(1.0, 1.0, 1.0),
        # deepface's cosine-distance cut-offs: 0.40 for the 2622-d, 0.68 for the 4096-d descriptor.
        threshold=threshold if threshold is not None else (0.60 if layer == "fc8" else 0.32),
        alignment="5point",
        source=source or "VGG-Face (Parkhi et al. 2015), weights from vgg_face_weights.h5",
    )


def load_vggface_h5(classifier: keras.Model, path: Path) -> None:
    """Set the classifier's 16 weighted layers from the file, in order, checking every shape."""
    stored = [(name, [a for _, a in weights]) for name, weights in read_h5_layers(path, "VGG-Face weight")]
    targets = [layer for layer in classifier.layers if layer.weights]
    if len(stored) != len(targets):
        raise FacestreamError(
            f"{path}: {len(stored)} layers with weights, VGG-Face has {len(targets)} "
            "(expected the 13 conv + fc6/fc7/fc8 layers of vgg_face_weights.h5)"
        )
    for (name, arrays), layer in zip(stored, targets, strict=True):
        want = [tuple(w.shape) for w in layer.weights]
        got = [a.shape for a in arrays]
        if want != got:
            raise FacestreamError(f"{path}: layer {name} holds shapes {got}, {layer.name} needs {want}")
        layer.set_weights(arrays)
