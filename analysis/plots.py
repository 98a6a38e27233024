"""PNG plots for the analysis commands (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import cv2
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage

from analysis.clustering import KSweep
from analysis.metrics import Eer, OperatingPoint, Roc

MAX_CURVE_POINTS = 4000
MAX_THUMBS = 300


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


def _thin(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS)).round().astype(int))


def plot_roc(roc: Roc, eer: Eer, chosen: OperatingPoint, n_impostor: int, path: Path, title: str) -> Path:
    """TAR against FAR on a log axis; FAR = 0 is drawn at half the smallest measurable FAR."""
    floor = 0.5 / max(1, n_impostor)
    keep = _thin(len(roc.thresholds))
    far = np.maximum(roc.far[keep], floor)
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.step(far, roc.tar[keep], where="post", color="tab:blue", label="ROC")
    ax.plot(
        max(eer.rate, floor),
        1 - eer.rate,
        "o",
        color="tab:red",
        label=f"EER {eer.rate:.2%} (t={eer.threshold:.3f})",
    )
    ax.plot(
        max(chosen.far, floor),
        1 - chosen.frr,
        "s",
        color="tab:green",
        label=f"{chosen.label}: TAR {1 - chosen.frr:.2%} (t={chosen.threshold:.3f})",
    )
    ax.axvline(
        1.0 / max(1, n_impostor), color="gray", lw=0.8, ls=":", label=f"1 / {n_impostor} impostor pairs"
    )
    ax.set_xscale("log")
    ax.set_xlim(floor * 0.8, 1.05)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("false accept rate (impostor pairs accepted)")
    ax.set_ylabel("true accept rate (genuine pairs accepted)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_scores(
    genuine: np.ndarray,
    impostor: np.ndarray,
    roc: Roc,
    marks: Sequence[tuple[str, float]],
    path: Path,
    title: str,
) -> Path:
    """Score histograms (top) and FAR/FRR against the threshold (bottom): the EER is where they cross."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 6.4), sharex=True)
    bins = np.linspace(min(genuine.min(), impostor.min()), max(genuine.max(), impostor.max()), 41)
    top.hist(
        impostor, bins=bins, density=True, alpha=0.6, color="tab:orange", label=f"impostor ({len(impostor)})"
    )
    top.hist(genuine, bins=bins, density=True, alpha=0.6, color="tab:blue", label=f"genuine ({len(genuine)})")
    top.set_ylabel("density")
    top.set_title(title)
    keep = _thin(len(roc.thresholds))
    bottom.step(roc.thresholds[keep], roc.far[keep], where="pre", color="tab:orange", label="FAR")
    bottom.step(roc.thresholds[keep], roc.frr[keep], where="pre", color="tab:blue", label="FRR")
    bottom.set_xlabel("cosine similarity threshold")
    bottom.set_ylabel("rate")
    colors = ["tab:red", "tab:green", "tab:purple", "tab:gray"]
    for n, (label, value) in enumerate(marks):
        for ax in (top, bottom):
            ax.axvline(
                value,
                color=colors[n % len(colors)],
                ls="--",
                lw=1,
                label=f"{label} {value:.3f}" if ax is top else None,
            )
    top.legend(fontsize=8)
    bottom.legend(fontsize=8)
    bottom.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_elbow(sweep: KSweep, chosen: int, elbow: int, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 5.0))
    ax.plot(sweep.ks, sweep.inertias, "o-", color="tab:blue", label="inertia (within-cluster sum of squares)")
    ax.axvline(elbow, color="tab:blue", ls=":", lw=1, label=f"elbow K={elbow}")
    ax.axvline(chosen, color="tab:red", ls="--", lw=1.2, label=f"chosen K={chosen}")
    ax.set_xlabel("K (clusters)")
    ax.set_ylabel("inertia")
    ax.set_xticks(sweep.ks)
    ks = [k for k, s in zip(sweep.ks, sweep.silhouettes, strict=True) if s is not None]
    sils = [s for s in sweep.silhouettes if s is not None]
    handles, labels = ax.get_legend_handles_labels()
    if ks:
        twin = ax.twinx()
        (line,) = twin.plot(ks, sils, "s-", color="tab:green", label="silhouette")
        twin.set_ylabel("silhouette (higher = better separated)")
        handles.append(line)
        labels.append("silhouette")
    ax.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    ax.set_title("K-means: elbow and silhouette")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_scatter(
    points: np.ndarray, clusters: np.ndarray, thumbs: Sequence[np.ndarray], path: Path, title: str
) -> Path:
    """The faces at their 2-D PCA positions, each thumbnail framed in its cluster's colour."""
    fig, ax = plt.subplots(figsize=(9, 7.5))
    cmap = plt.get_cmap("tab10" if clusters.max(initial=0) < 10 else "tab20")
    colors = [cmap(int(c) % cmap.N) for c in clusters]
    ax.scatter(points[:, 0], points[:, 1], c=colors, s=20)
    shown: set[int] = set()
    if len(points):
        shown = {int(v) for v in np.linspace(0, len(points) - 1, min(len(points), MAX_THUMBS)).round()}
    for i in sorted(shown):
        if i >= len(thumbs):
            break
        rgb = cv2.cvtColor(thumbs[i], cv2.COLOR_BGR2RGB)
        box = AnnotationBbox(
            OffsetImage(rgb, zoom=0.9),
            (points[i, 0], points[i, 1]),
            frameon=True,
            pad=0.15,
            bboxprops={"edgecolor": colors[i], "linewidth": 2.5},
        )
        ax.add_artist(box)
    for c in np.unique(clusters):
        ax.scatter([], [], color=cmap(int(c) % cmap.N), label=f"cluster {int(c):02d}")
    span = np.ptp(points, axis=0) if len(points) else np.ones(2)
    pad = np.maximum(span * 0.15, 0.05)
    if len(points):
        ax.set_xlim(points[:, 0].min() - pad[0], points[:, 0].max() + pad[0])
        ax.set_ylim(points[:, 1].min() - pad[1], points[:, 1].max() + pad[1])
    ax.set_xlabel("PCA 1")
    ax.set_ylabel("PCA 2")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)
