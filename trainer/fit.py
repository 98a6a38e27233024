"""Triplet training: P classes x K samples per batch (so every anchor has positives and negatives),
a tqdm progress bar, and the per-step loss kept for the loss curve.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from tqdm import tqdm

from trainer.losses import make_loss

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class PKBatches(keras.utils.PyDataset):
    """`steps` batches of `per_class` samples from each of `classes` random classes."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        steps: int,
        seed: int,
        per_class: int = 4,
        augment: Augment | None = None,
    ) -> None:
        super().__init__()
        self.x, self.y = x, y
        self.labels = np.unique(y)
        self.by_label = {int(c): np.flatnonzero(y == c) for c in self.labels}
        self.per_class = max(2, min(per_class, batch_size // 2))
        self.classes = max(2, min(len(self.labels), batch_size // self.per_class))
        self.steps = steps
        self.seed = seed
        self.epoch = 0
        self.augment = augment

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        chosen = rng.choice(self.labels, size=self.classes, replace=len(self.labels) < self.classes)
        picks = []
        for c in chosen:
            pool = self.by_label[int(c)]
            picks.append(rng.choice(pool, size=self.per_class, replace=len(pool) < self.per_class))
        idx = np.concatenate(picks)
        xb = self.x[idx]
        if self.augment is not None:
            xb = np.stack([self.augment(img, rng) for img in xb])
        return xb.astype(np.float32), self.y[idx].astype(np.int32)

    def on_epoch_end(self) -> None:
        self.epoch += 1


@dataclass
class History:
    step_loss: list[float] = field(default_factory=list)
    epoch_loss: list[float] = field(default_factory=list)


class ProgressBar(keras.callbacks.Callback):
    """tqdm over all steps; recovers each batch's own loss from Keras' running epoch mean."""

    def __init__(self, total: int, history: History, enabled: bool = True) -> None:
        super().__init__()
        self.total, self.history, self.enabled = total, history, enabled
        self.bar: Any = None
        self._mean = 0.0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.bar = tqdm(total=self.total, unit="batch", desc="train", disable=not self.enabled, leave=False)

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._mean = 0.0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        mean = float((logs or {}).get("loss", np.nan))
        self.history.step_loss.append((batch + 1) * mean - batch * self._mean)
        self._mean = mean
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{mean:.4f}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.history.epoch_loss.append(float((logs or {}).get("loss", np.nan)))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.bar is not None:
            self.bar.close()


def fit_triplet(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    steps: int | None = None,
    margin: float = 0.2,
    mining: str = "batch_hard",
    lr: float = 1e-3,
    seed: int = 0,
    augment: Augment | None = None,
    per_class: int = 4,
    progress: bool = True,
) -> History:
    steps = steps or max(1, len(x) // batch_size)
    data = PKBatches(x, y, batch_size, steps, seed, per_class=per_class, augment=augment)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=make_loss(margin, mining))
    history = History()
    model.fit(data, epochs=epochs, verbose=0, callbacks=[ProgressBar(epochs * steps, history, progress)])
    return history


def embed(model: keras.Model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    out = [
        np.asarray(model(x[i : i + batch_size].astype(np.float32), training=False))
        for i in range(0, len(x), batch_size)
    ]
    return (
        np.concatenate(out).astype(np.float32) if out else np.zeros((0, model.output_shape[-1]), np.float32)
    )
