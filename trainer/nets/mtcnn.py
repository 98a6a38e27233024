"""P/R/O-Net of the `mtcnn` package rebuilt with the Functional API (for tf2onnx), same weights.

The package defines them as subclassed models; we build its classes, load its bundled weights
(`mtcnn/assets/weights/*.lz4`) with its own loader and copy them layer by layer into ours, whose
output layers are named reg / prob / landmarks for detect/mtcnn.py.
"""

from __future__ import annotations

from typing import Any

import keras

from bus.errors import FacestreamError

L = keras.layers
# our layer name -> the package's layer name, per net
PNET_MAP = {
    **{n: n for n in ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3")},
    "reg": "conv4-1",
    "prob": "conv4-2",
}
RNET_MAP = {
    **{n: n for n in ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "fc4", "prelu4")},
    "reg": "fc5-1",
    "prob": "fc5-2",
}
ONET_MAP = {
    **{
        n: n
        for n in ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4", "prelu4", "fc5", "prelu5")
    },
    "reg": "fc6-1",
    "landmarks": "fc6-2",
    "prob": "fc6-3",
}


def _conv(x: Any, filters: int, kernel: int, n: int) -> Any:
    x = L.Conv2D(filters, kernel, name=f"conv{n}")(x)
    return L.PReLU(shared_axes=[1, 2], name=f"prelu{n}")(x)


def pnet() -> keras.Model:
    inp = keras.Input((None, None, 3), name="input")
    x = _conv(inp, 10, 3, 1)
    x = L.MaxPooling2D(2, strides=2, padding="same")(x)
    x = _conv(x, 16, 3, 2)
    x = _conv(x, 32, 3, 3)
    reg = L.Conv2D(4, 1, name="reg")(x)
    prob = L.Conv2D(2, 1, activation="softmax", name="prob")(x)
    return keras.Model(inp, [reg, prob], name="pnet")


def rnet() -> keras.Model:
    inp = keras.Input((24, 24, 3), name="input")
    x = _conv(inp, 28, 3, 1)
    x = L.MaxPooling2D(3, strides=2, padding="same")(x)
    x = _conv(x, 48, 3, 2)
    x = L.MaxPooling2D(3, strides=2, padding="valid")(x)
    x = _conv(x, 64, 2, 3)
    x = L.Permute((2, 1, 3))(x)
    x = L.Flatten()(x)
    x = L.Dense(128, name="fc4")(x)
    x = L.PReLU(name="prelu4")(x)
    reg = L.Dense(4, name="reg")(x)
    prob = L.Dense(2, activation="softmax", name="prob")(x)
    return keras.Model(inp, [reg, prob], name="rnet")


def onet() -> keras.Model:
    inp = keras.Input((48, 48, 3), name="input")
    x = _conv(inp, 32, 3, 1)
    x = L.MaxPooling2D(3, strides=2, padding="same")(x)
    x = _conv(x, 64, 3, 2)
    x = L.MaxPooling2D(3, strides=2, padding="valid")(x)
    x = _conv(x, 64, 3, 3)
    x = L.MaxPooling2D(2, strides=2, padding="same")(x)
    x = _conv(x, 128, 2, 4)
    x = L.Permute((2, 1, 3))(x)
    x = L.Flatten()(x)
    x = L.Dense(256, name="fc5")(x)
    x = L.PReLU(name="prelu5")(x)
    reg = L.Dense(4, name="reg")(x)
    landmarks = L.Dense(10, name="landmarks")(x)
    prob = L.Dense(2, activation="softmax", name="prob")(x)
    return keras.Model(inp, [reg, landmarks, prob], name="onet")


def _package_net(kind: str) -> Any:
    """The mtcnn package's own network with its bundled weights."""
    try:
        from mtcnn.network.onet import ONet
        from mtcnn.network.pnet import PNet
        from mtcnn.network.rnet import RNet
        from mtcnn.utils.tensorflow import load_weights
    except ImportError as exc:
        raise FacestreamError(
            "MTCNN export needs the mtcnn package: pip install --no-deps mtcnn==1.0.0 joblib lz4"
        ) from exc
    net = {"pnet": PNet, "rnet": RNet, "onet": ONet}[kind]()
    net.build()
    net.set_weights(load_weights(f"{kind}.lz4"))
    return net


def mtcnn_nets() -> dict[str, keras.Model]:
    """Our three Functional nets, holding the package's weights."""
    out = {}
    for kind, build, mapping in (
        ("pnet", pnet, PNET_MAP),
        ("rnet", rnet, RNET_MAP),
        ("onet", onet, ONET_MAP),
    ):
        theirs = _package_net(kind)
        ours = build()
        for mine, their_name in mapping.items():
            ours.get_layer(mine).set_weights(theirs.get_layer(their_name).get_weights())
        out[kind] = ours
    return out
