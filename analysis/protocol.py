"""Evaluation protocols: LFW-style k-fold verification accuracy and leave-one-out 1:K identification.

In k-fold, the threshold of each test fold is chosen on the other folds only, so the reported
accuracy never sees the threshold's own training data (LFW's "unrestricted" protocol).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bus.errors import FacestreamError


def _check(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(same, dtype=bool).reshape(-1)
    if s.shape != y.shape:
        raise FacestreamError(f"{len(s)} scores but {len(y)} same/different labels")
    if s.size == 0:
        raise FacestreamError("no pairs to evaluate")
    return s, y


def accuracy_at(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    s, y = _check(scores, same)
    return float(np.mean((s >= threshold) == y))


def best_threshold(scores: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy) maximising accuracy on these pairs.

    Candidates: the lowest score (accept all), midpoints between consecutive distinct scores, and
    just above the highest (reject all); ties go to the lowest candidate.
    """
    s, y = _check(scores, same)
    u = np.unique(s)
    candidates = np.concatenate([u[:1], (u[:-1] + u[1:]) / 2, [np.nextafter(u[-1], np.inf)]])
    # accepted genuine and rejected impostor counts at every candidate, via sorted scores
    g = np.sort(s[y])
    i = np.sort(s[~y])
    true_accepts = len(g) - np.searchsorted(g, candidates, side="left")
    true_rejects = np.searchsorted(i, candidates, side="left")
    acc = (true_accepts + true_rejects) / len(s)
    best = int(np.argmax(acc))
    return float(candidates[best]), float(acc[best])


@dataclass(frozen=True)
class KFoldResult:
    accuracies: list[float]  # per test fold
    thresholds: list[float]  # chosen on the other folds
    sizes: list[int]  # pairs per test fold

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies))


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> KFoldResult:
    """Accuracy of each fold at the threshold that is best on all the other folds."""
    s, y = _check(scores, same)
    f = np.asarray(folds).reshape(-1)
    if f.shape != s.shape:
        raise FacestreamError(f"{len(s)} scores but {len(f)} fold numbers")
    ids = np.unique(f)
    if len(ids) < 2:
        raise FacestreamError("k-fold accuracy needs at least 2 folds")
    accs, thresholds, sizes = [], [], []
    for fold in ids:
        test = f == fold
        t, _ = best_threshold(s[~test], y[~test])
        accs.append(accuracy_at(s[test], y[test], t))
        thresholds.append(t)
        sizes.append(int(test.sum()))
    return KFoldResult(accs, thresholds, sizes)


def stratified_folds(same: np.ndarray, k: int) -> np.ndarray:
    """Fold number of each pair: genuine and impostor pairs dealt round-robin, in order."""
    y = np.asarray(same, dtype=bool).reshape(-1)
    if k < 2:
        raise FacestreamError(f"need at least 2 folds, got {k}")
    folds = np.zeros(len(y), np.int64)
    for cls in (True, False):
        rows = np.flatnonzero(y == cls)
        folds[rows] = np.arange(len(rows)) % k
    return folds


@dataclass(frozen=True)
class IdentificationResult:
    probes: int  # images whose person has at least one other image
    correct: int  # nearest other image is the same person
    correct_above_threshold: int  # ... and at or above the threshold (open-set answer right)

    @property
    def rank1(self) -> float:
        return self.correct / self.probes if self.probes else float("nan")

    @property
    def rank1_at_threshold(self) -> float:
        return self.correct_above_threshold / self.probes if self.probes else float("nan")


def identification_accuracy(
    vectors: np.ndarray, labels: Sequence[str], threshold: float | None = None
) -> IdentificationResult:
    """Leave-one-out 1:K: each image in turn is the probe, all other images are the gallery.

    People with a single image are gallery distractors only. Ties go to the lower row.
    """
    mat = np.asarray(vectors, dtype=np.float64)
    names = np.asarray(labels, dtype=str)
    if mat.ndim != 2 or len(mat) != len(names):
        raise FacestreamError(f"expected one vector per label, got {mat.shape} for {len(names)} labels")
    sims = mat @ mat.T
    np.fill_diagonal(sims, -np.inf)
    probes = correct = above = 0
    for row in range(len(mat)):
        if np.count_nonzero(names == names[row]) < 2:
            continue
        probes += 1
        best = int(np.argmax(sims[row]))
        if names[best] == names[row]:
            correct += 1
            if threshold is None or sims[row, best] >= threshold:
                above += 1
    return IdentificationResult(probes, correct, above)
