"""Reading Keras 2 `save_weights` HDF5 files (the layout public Keras weight files have).

Root attribute `layer_names` lists every layer in order; each layer's group has a `weight_names`
attribute naming its datasets. Names may hold "/" (keras-vggface's "conv1/7x7_s2/bn"): HDF5
turns those into nested groups, and h5py finds them by the same path. A whole-model file keeps
the same layout under a `model_weights` group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bus.errors import FacestreamError

Weights = list[tuple[str, np.ndarray]]  # (weight name as stored, array), in stored order


def _decode(value: Any) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_h5_layers(path: Path, what: str = "weight") -> list[tuple[str, Weights]]:
    """(layer name, its named arrays) for every layer with weights, in file order."""
    import h5py  # comes with Keras

    path = Path(path)
    if not path.is_file():
        raise FacestreamError(f"{what} file not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FacestreamError(f"{path} is not an HDF5 weight file ({exc})") from exc
    with f:
        root = f.get("model_weights", f)
        if "layer_names" not in root.attrs:
            raise FacestreamError(f"{path}: no 'layer_names' attribute; not a Keras 2 save_weights file")
        layers = []
        for name in (_decode(n) for n in root.attrs["layer_names"]):
            if name not in root:
                raise FacestreamError(f"{path}: layer {name} is listed but has no group")
            group = root[name]
            weight_names = [_decode(w) for w in group.attrs.get("weight_names", [])]
            if weight_names:
                layers.append((name, [(w, np.asarray(group[w], dtype=np.float32)) for w in weight_names]))
        return layers


def variable_name(stored: str) -> str:
    """'conv1/7x7_s2/bn/gamma:0' -> 'gamma': the part Keras 3 calls the variable."""
    return stored.rsplit("/", 1)[-1].split(":", 1)[0]
