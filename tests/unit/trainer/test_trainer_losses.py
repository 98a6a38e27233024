"""Triplet loss: a hand-computed case, a brute-force reference, and the edge cases training hits."""

from __future__ import annotations

import itertools
from types import ModuleType

import numpy as np
import pytest

pytestmark = pytest.mark.train

# Four points on a line, two classes; margin 0.5. Distances: d01=1, d02=3, d03=0.4, d12=2, d13=0.6, d23=2.6.
POINTS = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.4, 0.0]], np.float32)
LABELS = np.array([0, 0, 1, 1])


def test_hand_computed_batch_hard(tf: ModuleType) -> None:
    from trainer.losses import triplet_loss

    # anchor: hardest positive - closest negative + margin
    # 0: 1 - 0.4 + 0.5 = 1.1 | 1: 1 - 0.6 + 0.5 = 0.9 | 2: 2.6 - 2 + 0.5 = 1.1 | 3: 2.6 - 0.4 + 0.5 = 2.7
    value = float(triplet_loss(LABELS, POINTS, margin=0.5, mining="batch_hard"))
    assert value == pytest.approx((1.1 + 0.9 + 1.1 + 2.7) / 4, abs=1e-6)  # 1.45


def test_hand_computed_semi_hard(tf: ModuleType) -> None:
    from trainer.losses import triplet_loss

    # pair (a, p): closest negative farther than d_ap, else the farthest negative
    # (0,1): d_ap 1, negatives {3, 0.4} -> 3: 1 - 3 + 0.5 < 0 -> 0
    # (1,0): d_ap 1, negatives {2, 0.6} -> 2: 1 - 2 + 0.5 < 0 -> 0
    # (2,3): d_ap 2.6, negatives {3, 2} -> 3: 2.6 - 3 + 0.5 = 0.1
    # (3,2): d_ap 2.6, negatives {0.4, 0.6}, none farther -> farthest 0.6: 2.6 - 0.6 + 0.5 = 2.5
    value = float(triplet_loss(LABELS, POINTS, margin=0.5, mining="semi_hard"))
    assert value == pytest.approx((0.0 + 0.0 + 0.1 + 2.5) / 4, abs=1e-6)  # 0.65


def _reference(labels: np.ndarray, emb: np.ndarray, margin: float, mining: str) -> float:
    """Loops over anchors / pairs, written from the definitions."""
    d = np.linalg.norm(emb[:, None] - emb[None], axis=2)
    n = len(labels)
    terms = []
    if mining == "batch_hard":
        for a in range(n):
            pos = [p for p in range(n) if p != a and labels[p] == labels[a]]
            neg = [k for k in range(n) if labels[k] != labels[a]]
            if pos and neg:
                terms.append(max(max(d[a, pos]) - min(d[a, neg]) + margin, 0.0))
    else:
        for a, p in itertools.permutations(range(n), 2):
            if labels[a] != labels[p]:
                continue
            neg = [k for k in range(n) if labels[k] != labels[a]]
            if not neg:
                continue
            farther = [d[a, k] for k in neg if d[a, k] > d[a, p]]
            chosen = min(farther) if farther else max(d[a, neg])
            terms.append(max(d[a, p] - chosen + margin, 0.0))
    return float(np.mean(terms)) if terms else 0.0


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
def test_matches_brute_force_reference(tf: ModuleType, mining: str) -> None:
    from trainer.losses import triplet_loss

    rng = np.random.default_rng(7)
    for trial in range(5):
        labels = rng.integers(0, 3, 12)
        emb = rng.normal(size=(12, 8)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        got = float(triplet_loss(labels, emb, margin=0.3, mining=mining))
        assert got == pytest.approx(_reference(labels, emb, 0.3, mining), abs=1e-5), trial


def test_collapsed_embedding_costs_the_margin_and_has_finite_gradient(tf: ModuleType) -> None:
    from trainer.losses import triplet_loss

    emb = tf.Variable(np.tile(np.array([[0.6, 0.8]], np.float32), (6, 1)))
    labels = np.array([0, 0, 1, 1, 2, 2])
    with tf.GradientTape() as tape:
        loss = triplet_loss(labels, emb, margin=0.2, mining="batch_hard")
    assert float(loss) == pytest.approx(0.2, abs=1e-6)
    assert np.isfinite(tape.gradient(loss, emb).numpy()).all()


def test_separated_classes_cost_nothing(tf: ModuleType) -> None:
    from trainer.losses import triplet_loss

    emb = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [-1, 0], [-1, 0]], np.float32)
    labels = np.array([0, 0, 1, 1, 2, 2])
    for mining in ("batch_hard", "semi_hard"):
        assert float(triplet_loss(labels, emb, margin=0.5, mining=mining)) == pytest.approx(0.0, abs=1e-6)


def test_anchor_without_positive_is_ignored(tf: ModuleType) -> None:
    from trainer.losses import triplet_loss

    # point 4 is alone in its class: it only serves as a negative
    emb = np.concatenate([POINTS, [[10.0, 0.0]]]).astype(np.float32)
    labels = np.array([0, 0, 1, 1, 2])
    assert float(triplet_loss(labels, emb, 0.5, "batch_hard")) == pytest.approx(1.45, abs=1e-6)


def test_bad_arguments(tf: ModuleType) -> None:
    from trainer.losses import make_loss, triplet_loss

    with pytest.raises(ValueError, match="mining"):
        triplet_loss(LABELS, POINTS, 0.2, "hardest")
    with pytest.raises(ValueError, match="margin"):
        triplet_loss(LABELS, POINTS, -1.0)
    with pytest.raises(ValueError, match="mining"):
        make_loss(0.2, "random")
