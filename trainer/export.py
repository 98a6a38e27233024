"""`facestream export`: every model to ONNX (opset 17) with its card, checked against Keras on real images."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bus.errors import FacestreamError
from bus.model_card import ModelCard
from trainer.tfenv import require_tf

log = logging.getLogger(__name__)
MTCNN_INPUTS = {"pnet": (None, None, 3), "rnet": (24, 24, 3), "onet": (48, 48, 3)}


def _photos(folder: Path | None) -> Path:
    from trainer.facedata import default_photos

    return Path(folder) if folder is not None else default_photos()


def _embedder_parity(model: Any, path: Path, card: ModelCard, photos: Path | None) -> float:
    from trainer.facedata import parity_crops
    from trainer.onnx_export import parity
    from trainer.preprocess import to_input

    crops = parity_crops(_photos(photos), card.input_width)
    return parity(model, path, to_input(crops, card))


def _checked_embedder(
    name: str, model: Any, path: Path, card: ModelCard, photos: Path | None, start: float
) -> dict[str, Any]:
    """Parity against Keras on real faces, then the file as embed will load it; the export's report."""
    from trainer.onnx_export import check_embedder_file

    diff = _embedder_parity(model, path, card, photos)
    check_embedder_file(path)
    return {
        "model": name,
        "onnx": str(path),
        "parity_max_abs_diff": diff,
        "seconds": time.monotonic() - start,
    }


def export_vggface(
    weights: Path, out: Path, layer: str = "fc8", photos: Path | None = None, threads: int | None = None
) -> dict[str, Any]:
    """vgg_face_weights.h5 -> ONNX (written directly: tf2onnx needs more memory than most machines have)."""
    require_tf(threads)
    from trainer.nets.vggface import load_vggface_h5, vggface_card, vggface_classifier, vggface_descriptor
    from trainer.onnx_direct import convert_graph
    from trainer.onnx_export import save

    start = time.monotonic()
    classifier = vggface_classifier()
    load_vggface_h5(classifier, weights)
    model = vggface_descriptor(classifier, layer)
    card = vggface_card(layer, source=f"VGG-Face (Parkhi et al. 2015) {layer}, weights {Path(weights).name}")
    path = save(convert_graph(model), out, card.to_props())
    return _checked_embedder("vggface", model, path, card, photos, start)


def export_vggface2(
    arch: str, weights: Path, out: Path, photos: Path | None = None, threads: int | None = None
) -> dict[str, Any]:
    """keras-vggface ResNet50 / SENet50 weights (with or without top) -> ONNX of the 2048-d descriptor.

    Written directly, like VGG-Face: tf2onnx takes 36 s and 7.3 GB for the 94 MB ResNet50.
    """
    require_tf(threads)
    from trainer.nets.vggface2 import TOP, as_arch, vggface2_card, vggface2_descriptor, vggface2_from_h5
    from trainer.onnx_direct import convert_graph
    from trainer.onnx_export import save

    start, kind = time.monotonic(), as_arch(arch)
    net = vggface2_from_h5(kind, weights)
    model = vggface2_descriptor(net)
    card = vggface2_card(kind, source=f"VGGFace2 {kind} (Cao et al. 2018), weights {Path(weights).name}")
    path = save(convert_graph(model), out, card.to_props())
    result = _checked_embedder(arch, model, path, card, photos, start)
    result["classifier_in_file"] = any(layer.name == TOP for layer in net.layers)
    return result


def export_openface(
    weights: Path, out: Path, photos: Path | None = None, threads: int | None = None
) -> dict[str, Any]:
    """Keras-OpenFace CSV weights folder -> ONNX via tf2onnx."""
    require_tf(threads)
    from trainer.nets.openface import load_openface_csv, openface_card, openface_nn4_small2
    from trainer.onnx_export import export_embedder

    start = time.monotonic()
    model = openface_nn4_small2()
    load_openface_csv(model, weights)
    card = openface_card()
    path = export_embedder(model, out, card)
    return _checked_embedder("openface", model, path, card, photos, start)


def _mtcnn_batches(photos: Path) -> dict[str, np.ndarray]:
    """Real inputs for each net: two photos (normalised as MTCNN does) and face-sized patches of them."""
    from trainer.facedata import find_images

    images = []
    for _, path in find_images(photos)[:4]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            images.append((cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) - 127.5) / 128.0)
    if not images:
        raise FacestreamError(f"no readable images in {photos} for the MTCNN parity check")
    rng = np.random.default_rng(0)
    out: dict[str, list[np.ndarray]] = {"pnet": [], "rnet": [], "onet": []}
    h, w = min(i.shape[0] for i in images), min(i.shape[1] for i in images)
    out["pnet"] = [np.stack([i[:h, :w] for i in images[:2]])]
    for image in images:
        for _ in range(4):
            side = int(rng.integers(24, max(25, min(image.shape[:2]))))
            y, x = (int(rng.integers(0, image.shape[k] - side + 1)) for k in (0, 1))
            patch = image[y : y + side, x : x + side]
            out["rnet"].append(cv2.resize(patch, (24, 24), interpolation=cv2.INTER_LINEAR))
            out["onet"].append(cv2.resize(patch, (48, 48), interpolation=cv2.INTER_LINEAR))
    return {k: np.concatenate(v) if k == "pnet" else np.stack(v) for k, v in out.items()}


def export_mtcnn(out_dir: Path, photos: Path | None = None, threads: int | None = None) -> dict[str, Any]:
    """P/R/O-Net from the mtcnn package's bundled weights -> pnet/rnet/onet.onnx in out_dir."""
    require_tf(threads)
    from trainer.nets.mtcnn import mtcnn_nets
    from trainer.onnx_export import export_keras, parity

    start = time.monotonic()
    out_dir = Path(out_dir)
    batches = _mtcnn_batches(_photos(photos))
    result: dict[str, Any] = {"model": "mtcnn", "dir": str(out_dir), "parity_max_abs_diff": {}}
    for kind, model in mtcnn_nets().items():
        props = {"facestream.mtcnn_net": kind, "facestream.source": "mtcnn==1.0.0 bundled weights (MIT)"}
        path = export_keras(model, out_dir / f"{kind}.onnx", props)
        result["parity_max_abs_diff"][kind] = parity(model, path, batches[kind])
    result["seconds"] = time.monotonic() - start
    return result


def export_checkpoint(
    run_dir: Path, out: Path | None = None, photos: Path | None = None, threads: int | None = None
) -> dict[str, Any]:
    """A training run's model.keras + card.json -> ONNX (again, e.g. after fine-tuning by hand)."""
    require_tf(threads)
    import keras

    import trainer.nets.layers  # noqa: F401  (registers OpenFace's custom layers for loading)
    from trainer.onnx_export import check_embedder_file, export_embedder, parity
    from trainer.preprocess import to_input

    run_dir = Path(run_dir)
    model_path, card_path = run_dir / "model.keras", run_dir / "card.json"
    for p in (model_path, card_path):
        if not p.is_file():
            raise FacestreamError(f"{p} not found: give the folder a `facestream train` run wrote")
    try:
        props = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise FacestreamError(f"{card_path} is not JSON ({exc})") from exc
    card = ModelCard.from_props({str(k): str(v) for k, v in props.items()}, where=str(card_path))
    model = keras.models.load_model(model_path, compile=False)
    path = export_embedder(model, out or run_dir / "model.onnx", card)
    if card.alignment == "5point":
        diff = _embedder_parity(model, path, card, photos)
    else:  # digits: real MNIST digits
        from trainer.digits import load_mnist

        x, _ = load_mnist()
        digits = [cv2.cvtColor(d.astype(np.uint8), cv2.COLOR_GRAY2BGR) for d in x[:32]]
        diff = parity(model, path, to_input(digits, card))
    check_embedder_file(path)
    return {"model": card.model_id, "onnx": str(path), "parity_max_abs_diff": diff}
