"""K-means over embeddings, with the elbow and silhouette criteria to suggest how many people.

K-means runs on the full unit embeddings (where squared distance = 2 - 2 cosine); PCA to 2-D is
only for the picture, since two components keep too little of a 128-d face embedding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score

from bus.errors import FacestreamError

SEED = 0


@dataclass(frozen=True)
class KSweep:
    ks: list[int]
    inertias: list[float]
    silhouettes: list[float | None]  # None where undefined (k = 1 or k = n)
    labels: dict[int, np.ndarray]  # k -> cluster of each row


def kmeans(x: np.ndarray, k: int, seed: int = SEED) -> tuple[np.ndarray, float]:
    model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(np.asarray(x, np.float64))
    return np.asarray(model.labels_, np.int64), float(model.inertia_)


def sweep_k(
    x: np.ndarray,
    max_k: int,
    seed: int = SEED,
    progress: Callable[[Iterable[int]], Iterable[int]] = lambda it: it,
) -> KSweep:
    """K-means for k = 1..max_k (capped at the number of rows)."""
    n = len(x)
    if n < 2:
        raise FacestreamError(f"clustering needs at least 2 faces, found {n}")
    top = min(max_k, n)
    if top < 1:
        raise FacestreamError(f"max K must be at least 1, got {max_k}")
    ks, inertias, sils, labels = [], [], [], {}
    for k in progress(range(1, top + 1)):
        lab, inertia = kmeans(x, k, seed)
        distinct = len(np.unique(lab))
        sil = float(silhouette_score(x, lab)) if 2 <= distinct <= n - 1 else None
        ks.append(k)
        inertias.append(inertia)
        sils.append(sil)
        labels[k] = lab
    return KSweep(ks, inertias, sils, labels)


def elbow_k(ks: Sequence[int], inertias: Sequence[float]) -> int:
    """The knee of the inertia curve: a big drop in inertia followed by a much smaller one.

    Each K scores (its drop / the total drop) * log(its drop / the next drop): past the true
    number of groups, one more cluster only splits a tight group and the drop collapses. The
    share weighting keeps tiny drops in the flat tail from winning on their ratio alone. Scale-
    free; a curve where no drop beats the next (a straight line: no structure) gives the first K.
    """
    if len(ks) != len(inertias) or not ks:
        raise FacestreamError("elbow needs one inertia per K")
    w = np.asarray(inertias, np.float64)
    total = w[0] - w[-1]
    if len(ks) < 3 or total <= 0:
        return int(ks[0])
    drops = np.maximum(w[:-1] - w[1:], 0.0)  # drops[i]: from ks[i] to ks[i + 1]
    tiny = 1e-12 * total
    best_k, best_score = int(ks[0]), 0.0
    for i in range(len(drops) - 1):
        score = drops[i] / total * np.log(max(drops[i], tiny) / max(drops[i + 1], tiny))
        if score > best_score:
            best_k, best_score = int(ks[i + 1]), float(score)
    return best_k


def silhouette_k(ks: Sequence[int], silhouettes: Sequence[float | None]) -> int | None:
    """K with the highest silhouette (the lowest K among ties), None when none was defined."""
    best: tuple[float, int] | None = None
    for k, s in zip(ks, silhouettes, strict=True):
        if s is not None and (best is None or s > best[0]):
            best = (s, k)
    return None if best is None else best[1]


def suggest_k(sweep: KSweep) -> tuple[int, str]:
    """Silhouette when defined (it also judges tight groups of 2-3 photos well), else the elbow."""
    by_silhouette = silhouette_k(sweep.ks, sweep.silhouettes)
    if by_silhouette is not None:
        return by_silhouette, "silhouette"
    return elbow_k(sweep.ks, sweep.inertias), "elbow"


def project_2d(x: np.ndarray) -> np.ndarray:
    """PCA to 2-D for plotting; fewer rows or dimensions give zero columns, not an error."""
    mat = np.asarray(x, np.float64)
    out = np.zeros((len(mat), 2), np.float64)
    comps = min(2, len(mat), mat.shape[1] if mat.ndim == 2 else 0)
    if comps >= 1 and len(mat) >= 2:
        out[:, :comps] = PCA(n_components=comps, random_state=SEED).fit_transform(mat)
    return out


def purity(clusters: Sequence[int] | np.ndarray, truth: Sequence[str]) -> float:
    """Share of items whose cluster's majority person is their own person (1.0 = no mixing)."""
    c = np.asarray(clusters).reshape(-1)
    if len(c) != len(truth) or len(c) == 0:
        raise FacestreamError("purity needs one true label per clustered item")
    hits = 0
    for cluster in np.unique(c):
        members = [truth[int(i)] for i in np.flatnonzero(c == cluster)]
        hits += Counter(members).most_common(1)[0][1]
    return hits / len(c)


def inverse_purity(clusters: Sequence[int] | np.ndarray, truth: Sequence[str]) -> float:
    """Share of items in their person's majority cluster (1.0 = no person split over clusters)."""
    c = np.asarray(clusters).reshape(-1)
    if len(c) != len(truth):
        raise FacestreamError("purity needs one true label per clustered item")
    names = np.unique(np.asarray(truth, dtype=str), return_inverse=True)[1]
    return purity(names, [str(v) for v in c])
