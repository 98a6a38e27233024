"""`facestream train faces`: triplet training of a face embedding from a folder of people's photos.

Architectures: `small` (64x64 CNN, trains from scratch in seconds on a CPU) or `openface`
(nn4.small2, 96x96; pass Keras-OpenFace CSV weights with --weights to fine-tune them).
Probes: one photo of everyone with two or more is held out; the rest is the training set and
the gallery for nearest-neighbour accuracy. Bigger runs: raise --epochs/--batch-size/--steps
(TensorFlow uses a GPU by itself when one is visible).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bus.errors import FacestreamError
from bus.model_card import ModelCard
from trainer.tfenv import require_tf

log = logging.getLogger(__name__)
ARCHS = ("small", "openface")


@dataclass
class FacesConfig:
    folder: Path
    out: Path = Path("runs/faces")
    arch: str = "small"
    weights: Path | None = None  # openface: Keras-OpenFace CSV folder to start from
    size: int = 64  # small arch input side (openface is fixed at 96)
    dim: int = 128
    epochs: int = 30
    batch_size: int = 32
    steps: int | None = None  # per epoch; default max(5, 4 * training photos / batch)
    margin: float = 0.2
    mining: str = "batch_hard"
    lr: float | None = None  # default 1e-3 (small), 1e-4 (openface)
    layout: str = "pca"
    detector: str = "yunet"
    mtcnn_dir: Path | None = None
    seed: int = 0
    threads: int | None = None
    progress: bool = True


def faces_card(arch: str, size: int, dim: int, threshold: float) -> ModelCard:
    if arch == "openface":
        mean, std, color, size = (0.0, 0.0, 0.0), (255.0, 255.0, 255.0), "RGB", 96
    else:
        mean, std, color = (127.5, 127.5, 127.5), (128.0, 128.0, 128.0), "RGB"
    return ModelCard(
        model_id=f"faces-{arch}-triplet-{dim}d",
        input_width=size,
        input_height=size,
        embedding_dim=dim,
        color_order=color,  # type: ignore[arg-type]
        layout="NHWC",
        mean=mean,
        std=std,
        threshold=round(threshold, 6),
        alignment="5point",
        source=f"facestream train faces ({arch}, triplet loss)",
    )


def suggest_threshold(emb: np.ndarray, labels: np.ndarray) -> float:
    """Midway between the mean same-person and mean different-person similarity (0.5 if either is missing)."""
    sims = emb @ emb.T
    same = labels[:, None] == labels[None, :]
    off = ~np.eye(len(labels), dtype=bool)
    genuine, impostor = sims[same & off], sims[~same]
    if len(genuine) == 0 or len(impostor) == 0:
        return 0.5
    return float((genuine.mean() + impostor.mean()) / 2)


def build(cfg: FacesConfig) -> Any:
    if cfg.arch == "small":
        from trainer.nets.small import faces_net

        if cfg.weights is not None:
            raise FacestreamError("--weights is for --arch openface (Keras-OpenFace CSV folder)")
        return faces_net(cfg.dim, cfg.size)
    from trainer.nets.openface import load_openface_csv, openface_nn4_small2

    if cfg.dim != 128:
        raise FacestreamError("--arch openface has a 128-d output; drop --dim")
    model = openface_nn4_small2()
    if cfg.weights is not None:
        log.info("loaded %d OpenFace layers from %s", load_openface_csv(model, cfg.weights), cfg.weights)
    return model


def run(cfg: FacesConfig) -> dict[str, Any]:
    if cfg.arch not in ARCHS:
        raise FacestreamError(f"--arch must be one of {', '.join(ARCHS)}, got {cfg.arch!r}")
    require_tf(cfg.threads)
    import keras

    from trainer import evaluate, plots
    from trainer.facedata import augment, holdout, load_faces
    from trainer.fit import embed, fit_triplet
    from trainer.onnx_export import export_embedder, parity
    from trainer.preprocess import to_input

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    size = 96 if cfg.arch == "openface" else cfg.size
    data = load_faces(cfg.folder, size, cfg.detector, cfg.mtcnn_dir)
    card0 = faces_card(cfg.arch, size, cfg.dim, 0.5)
    x = to_input(data.crops, card0)
    y = data.labels
    train, probe = holdout(data.people)
    log.info(
        "faces: %d photos of %d people (%d probes), %d skipped",
        len(y),
        len(set(data.people)),
        len(probe),
        len(data.skipped),
    )

    model = build(cfg)
    before = embed(model, x)
    steps = cfg.steps or max(5, 4 * len(train) // cfg.batch_size)
    history = fit_triplet(
        model,
        x[train],
        y[train],
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        steps=steps,
        margin=cfg.margin,
        mining=cfg.mining,
        lr=cfg.lr or (1e-4 if cfg.arch == "openface" else 1e-3),
        seed=cfg.seed,
        augment=augment,
        progress=cfg.progress,
    )
    emb = embed(model, x)
    card = faces_card(cfg.arch, size, cfg.dim, suggest_threshold(emb[train], y[train]))
    metrics: dict[str, Any] = {
        "nn_accuracy": evaluate.nn_accuracy(emb[train], y[train], emb[probe], y[probe]),
        "nn_accuracy_untrained": evaluate.nn_accuracy(before[train], y[train], before[probe], y[probe]),
        "photos": len(y),
        "people": len(set(data.people)),
        "probes": [str(data.paths[i].name) for i in probe],
        "skipped": [str(p) for p in data.skipped],
        "threshold": card.threshold,
        "final_loss": history.epoch_loss[-1] if history.epoch_loss else None,
        "arch": cfg.arch,
        "epochs": cfg.epochs,
        "steps_per_epoch": steps,
    }
    model.save(out / "model.keras")
    onnx_path = export_embedder(model, out / "model.onnx", card)
    metrics["onnx_parity_max_abs_diff"] = parity(model, onnx_path, x[:16])
    (out / "card.json").write_text(json.dumps(card.to_props(), indent=2))
    plots.loss_curve(
        history.step_loss,
        history.epoch_loss,
        steps,
        out / "loss_curve.png",
        f"faces {cfg.arch} ({cfg.mining})",
    )
    is_probe = np.isin(np.arange(len(y)), probe)
    title = "face embedding (x: held-out probes)"
    plots.embedding_map(
        emb, data.people, out / "embedding_2d.png", title, cfg.layout, cfg.seed, is_probe.tolist()
    )
    metrics["outputs"] = sorted(p.name for p in out.iterdir())
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics
