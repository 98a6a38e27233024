"""The two pictures every training run leaves behind: its loss curve and a 2-D map of its embedding."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np


def loss_curve(
    step_loss: Sequence[float], epoch_loss: Sequence[float], steps_per_epoch: int, path: Path, title: str
) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = np.arange(1, len(step_loss) + 1)
    ax.plot(steps, step_loss, lw=0.8, alpha=0.5, label="batch")
    if epoch_loss:
        ends = np.arange(1, len(epoch_loss) + 1) * steps_per_epoch
        ax.plot(ends, epoch_loss, "o-", lw=1.5, label="epoch mean")
    ax.set_xlabel("step")
    ax.set_ylabel("triplet loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def project_2d(emb: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """PCA (numpy SVD) or t-SNE (scikit-learn) down to two dimensions."""
    if method == "pca":
        centred = emb - emb.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        return np.asarray(centred @ vt[:2].T)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(emb) - 1) / 3)))
        return np.asarray(TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(emb))
    raise ValueError(f"layout must be 'pca' or 'tsne', got {method!r}")


def embedding_map(
    emb: np.ndarray,
    names: Sequence[str],
    path: Path,
    title: str,
    method: str = "pca",
    seed: int = 0,
    marked: Sequence[bool] | None = None,
) -> Path:
    """Scatter of the embedding, one colour per name (digit or person); `marked` points (held-out
    probes) are drawn as crosses."""
    xy = project_2d(emb, method, seed) if len(emb) > 2 else np.zeros((len(emb), 2))
    labels = np.asarray(names)
    cross = np.zeros(len(names), bool) if marked is None else np.asarray(marked, bool)
    fig, ax = plt.subplots(figsize=(7, 6), dpi=100)
    cmap = plt.get_cmap("tab10" if len(set(names)) <= 10 else "tab20")
    for i, name in enumerate(sorted(set(names), key=str)):
        sel = labels == name
        colour = cmap(i % cmap.N)
        ax.scatter(xy[sel & ~cross, 0], xy[sel & ~cross, 1], s=10, color=colour, label=str(name), alpha=0.8)
        if (sel & cross).any():
            ax.scatter(xy[sel & cross, 0], xy[sel & cross, 1], s=60, color=colour, marker="x")
    ax.set_title(f"{title} ({method.upper()})")
    ax.legend(markerscale=2, fontsize=8, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
