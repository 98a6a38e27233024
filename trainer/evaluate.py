"""Metrics on unit-vector embeddings (numpy only): nearest-neighbour accuracy and open-set recognition."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def nn_accuracy(
    gallery: np.ndarray, gallery_labels: np.ndarray, probes: np.ndarray, probe_labels: np.ndarray
) -> float:
    """Share of probes whose most similar gallery vector (cosine) has the probe's label."""
    if len(probes) == 0 or len(gallery) == 0:
        return float("nan")
    best = np.argmax(probes @ gallery.T, axis=1)
    return float(np.mean(gallery_labels[best] == probe_labels))


def class_centroids(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One unit-length mean vector per class; returns (classes, centroids)."""
    classes = np.unique(labels)
    cents = np.stack([emb[labels == c].mean(axis=0) for c in classes])
    cents /= np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    return classes, cents.astype(np.float32)


@dataclass(frozen=True)
class OpenSetRule:
    """Nearest class centroid, answered only when its cosine similarity reaches `threshold`."""

    classes: np.ndarray
    centroids: np.ndarray
    threshold: float

    def predict(self, emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(label or -1 for "unknown", similarity to the nearest centroid) per row."""
        sims = emb @ self.centroids.T
        best = np.argmax(sims, axis=1)
        score = sims[np.arange(len(emb)), best]
        labels = np.where(score >= self.threshold, self.classes[best], -1)
        return labels, score


def fit_open_set(
    train: np.ndarray, train_labels: np.ndarray, val_known: np.ndarray, accept_known: float = 0.95
) -> OpenSetRule:
    """Threshold = the similarity that accepts `accept_known` of held-out known samples.

    Only known classes are used: unknowns are never seen before the test.
    """
    classes, cents = class_centroids(train, train_labels)
    score = np.max(val_known @ cents.T, axis=1)
    threshold = float(np.quantile(score, 1.0 - accept_known)) if len(score) else 0.0
    return OpenSetRule(classes, cents, threshold)


def open_set_report(
    rule: OpenSetRule, known: np.ndarray, known_labels: np.ndarray, unknown: np.ndarray
) -> dict[str, float]:
    pred_k, _ = rule.predict(known)
    pred_u, _ = rule.predict(unknown)
    closed = rule.classes[np.argmax(known @ rule.centroids.T, axis=1)] if len(known) else np.zeros(0)
    return {
        "threshold": rule.threshold,
        "known_accuracy": float(np.mean(pred_k == known_labels)) if len(known) else float("nan"),
        "known_closed_set_accuracy": float(np.mean(closed == known_labels)) if len(known) else float("nan"),
        "known_rejected_rate": float(np.mean(pred_k == -1)) if len(known) else float("nan"),
        "unknown_rejection_rate": float(np.mean(pred_u == -1)) if len(unknown) else float("nan"),
        "known_test": float(len(known)),
        "unknown_test": float(len(unknown)),
    }
