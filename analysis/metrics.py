"""Verification metrics on similarity scores: ROC, EER, FAR/FRR and the threshold for a target FAR.

Convention everywhere: a pair is accepted (same person) when its score is >= the threshold.
FAR = accepted impostor pairs / impostor pairs; FRR = rejected genuine pairs / genuine pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bus.errors import FacestreamError

# The threshold for a target FAR sits this far above the impostor score it must reject, so that
# the float32 similarities a gallery computes at run time still fall below it.
THRESHOLD_MARGIN = 1e-6
STANDARD_FARS = (1e-1, 1e-2, 1e-3, 1e-4)


def _scores(values: object, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise FacestreamError(f"no {what} scores: need at least one {what} pair")
    if not np.isfinite(arr).all():
        raise FacestreamError(f"{what} scores hold NaN or infinity")
    return arr


def pair_scores(
    vectors: np.ndarray,
    labels: Sequence[str],
    progress: Callable[[Iterable[int]], Iterable[int]] = lambda rows: rows,
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities of every pair i < j of unit vectors, split into (genuine, impostor)."""
    mat = np.asarray(vectors, dtype=np.float64)
    if mat.ndim != 2 or len(mat) != len(labels):
        raise FacestreamError(f"expected one vector per label, got {mat.shape} for {len(labels)} labels")
    codes = np.unique(np.asarray(labels, dtype=object), return_inverse=True)[1]
    genuine: list[np.ndarray] = []
    impostor: list[np.ndarray] = []
    for i in progress(range(len(mat) - 1)):
        sims = mat[i + 1 :] @ mat[i]
        same = codes[i + 1 :] == codes[i]
        genuine.append(sims[same])
        impostor.append(sims[~same])
    empty = np.zeros(0, np.float64)
    return (
        np.concatenate(genuine) if genuine else empty,
        np.concatenate(impostor) if impostor else empty,
    )


def far_frr_at(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> tuple[float, float]:
    g, i = _scores(genuine, "genuine"), _scores(impostor, "impostor")
    return float(np.mean(i >= threshold)), float(np.mean(g < threshold))


@dataclass(frozen=True)
class Roc:
    """FAR and FRR at every threshold where either changes (ascending thresholds).

    The rates at thresholds[i] hold for every threshold in (thresholds[i-1], thresholds[i]].
    """

    thresholds: np.ndarray
    far: np.ndarray
    frr: np.ndarray

    @property
    def tar(self) -> np.ndarray:
        return 1.0 - self.frr


def roc_curve(genuine: np.ndarray, impostor: np.ndarray) -> Roc:
    g = np.sort(_scores(genuine, "genuine"))
    i = np.sort(_scores(impostor, "impostor"))
    values = np.unique(np.concatenate([g, i]))
    thresholds = np.append(values, np.nextafter(values[-1], np.inf))
    far = (len(i) - np.searchsorted(i, thresholds, side="left")) / len(i)
    frr = np.searchsorted(g, thresholds, side="left") / len(g)
    return Roc(thresholds, far.astype(np.float64), frr.astype(np.float64))


@dataclass(frozen=True)
class Eer:
    rate: float  # where FAR = FRR
    threshold: float


def equal_error_rate(roc: Roc) -> Eer:
    """EER: exact where the step curves meet, else linear interpolation between the two ROC points.

    When FAR = FRR over a range of thresholds (e.g. 0 for separable scores), the threshold is the
    middle of that range.
    """
    t, far, frr = roc.thresholds, roc.far, roc.frr
    diff = far - frr  # non-increasing in the threshold: +1 at the lowest, -1 above the highest
    j = int(np.argmax(diff <= 0))
    if diff[j] == 0:
        k = j
        while k + 1 < len(diff) and diff[k + 1] == 0:
            k += 1
        low = t[j - 1] if j > 0 else t[j]
        return Eer(float(far[j]), float((low + t[k]) / 2))
    a = diff[j - 1] / (diff[j - 1] - diff[j])
    rate = far[j - 1] + a * (far[j] - far[j - 1])
    return Eer(float(rate), float(t[j - 1] + a * (t[j] - t[j - 1])))


def allowed_false_accepts(n_impostor: int, target_far: float) -> int:
    # The epsilon keeps 0.29 * 100 at 29 rather than 28.999999999999996.
    return math.floor(target_far * n_impostor + 1e-9)


def threshold_at_far(impostor: np.ndarray, target_far: float) -> float:
    """The lowest threshold whose FAR is at most target_far (plus THRESHOLD_MARGIN).

    With k = floor(target * n) false accepts allowed, it lies just above the (k+1)-th highest
    impostor score: any lower threshold accepts k+1 impostors.
    """
    if not 0.0 <= target_far <= 1.0:
        raise FacestreamError(f"target FAR must be between 0 and 1, got {target_far}")
    desc = np.sort(_scores(impostor, "impostor"))[::-1]
    k = allowed_false_accepts(len(desc), target_far)
    if k >= len(desc):
        return float(desc[-1])  # every impostor may be accepted
    return float(desc[k] + THRESHOLD_MARGIN)


@dataclass(frozen=True)
class OperatingPoint:
    label: str
    threshold: float
    far: float
    frr: float


def far_frr_table(
    genuine: np.ndarray,
    impostor: np.ndarray,
    targets: Sequence[float] = STANDARD_FARS,
    extra: Sequence[tuple[str, float]] = (),
) -> list[OperatingPoint]:
    """FAR/FRR at the threshold for each target FAR, then at named thresholds (model's, EER...)."""
    rows = []
    for target in targets:
        t = threshold_at_far(impostor, target)
        far, frr = far_frr_at(genuine, impostor, t)
        rows.append(OperatingPoint(f"FAR<={target:g}", t, far, frr))
    for label, t in extra:
        far, frr = far_frr_at(genuine, impostor, t)
        rows.append(OperatingPoint(label, float(t), far, frr))
    return rows
