"""Recent Unknown sightings grouped by face, with analysis' clustering (K-means, silhouette/elbow).

K-means must pick at least two groups for the silhouette to be defined, so groups whose mean
faces are as similar as the model's own threshold says "same person" are merged afterwards:
one person seen many times is one group to name, not two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from analysis.clustering import suggest_k, sweep_k
from events.store import Sighting

MAX_K = 8


@dataclass(frozen=True)
class Cluster:
    members: list[Sighting]  # newest first
    cohesion: float  # mean cosine similarity of the members to their mean face (1.0 for one)

    @property
    def id(self) -> int:
        return min(s.id for s in self.members)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cluster_sightings(
    sightings: list[Sighting], vectors: dict[int, np.ndarray], same_person: float
) -> tuple[list[Cluster], str]:
    """Groups (largest first) and how their number was chosen."""
    usable = [s for s in sightings if s.id in vectors]
    if not usable:
        return [], "none"
    x = _unit(np.stack([vectors[s.id] for s in usable]).astype(np.float64))
    if len(usable) == 1:
        labels, method = np.zeros(1, np.int64), "single"
    else:
        with threadpool_limits(1):  # small problems: threads cost more than they give (1.3 s vs 0.2 s)
            sweep = sweep_k(x, min(MAX_K, len(usable)))
        k, method = suggest_k(sweep)
        labels = sweep.labels[k]
    groups = [list(np.flatnonzero(labels == lab)) for lab in np.unique(labels)]
    merged = True
    while merged and len(groups) > 1:
        merged = False
        means = _unit(np.stack([x[g].mean(axis=0) for g in groups]))
        sims = means @ means.T
        np.fill_diagonal(sims, -2.0)
        i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        if sims[i, j] >= same_person:
            groups[i] = groups[i] + groups[j]
            del groups[j]
            merged = True
    clusters = []
    for g in groups:
        mean = _unit(x[g].mean(axis=0))
        members = sorted((usable[i] for i in g), key=lambda s: (s.last_seen_ms, s.id), reverse=True)
        clusters.append(Cluster(members, round(float((x[g] @ mean).mean()), 4)))
    clusters.sort(key=lambda c: (len(c.members), c.members[0].last_seen_ms), reverse=True)
    return clusters, method
