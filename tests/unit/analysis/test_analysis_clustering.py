"""Elbow, silhouette and purity on hand-made and clearly separated data."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.cluster import order_by_size
from analysis.clustering import (
    elbow_k,
    inverse_purity,
    project_2d,
    purity,
    silhouette_k,
    suggest_k,
    sweep_k,
)
from bus.errors import FacestreamError


def test_elbow_hand_computed() -> None:
    # drops 80, 5, 3, 2 of 90: K=2 scores 80/90 * ln(80/5) = 2.46, K=3 5/90 * ln(5/3) = 0.03
    assert elbow_k([1, 2, 3, 4, 5], [100, 20, 15, 12, 10]) == 2
    # drops 10, 70, 5, 5: K=2 scores < 0 (10 < 70), K=3 70/90 * ln(14) = 2.05
    assert elbow_k([1, 2, 3, 4, 5], [100, 90, 20, 15, 10]) == 3
    assert elbow_k([1, 2, 3, 4, 5], [50, 40, 30, 20, 10]) == 1  # straight line: no knee
    # a 1-unit drop before a flat tail has a large ratio (100) but a tiny share: K=2 wins
    assert elbow_k([1, 2, 3, 4, 5], [100, 10, 9, 8.99, 8.9899]) == 2
    assert elbow_k([1, 2], [5, 1]) == 1  # too few points for a knee
    assert elbow_k([1, 2, 3], [4, 4, 4]) == 1  # no drop: one group


def test_silhouette_k_ignores_undefined_and_takes_lowest_tie() -> None:
    assert silhouette_k([1, 2, 3, 4], [None, 0.3, 0.5, 0.5]) == 3
    assert silhouette_k([1], [None]) is None


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 10, (4, 5))
    truth = np.repeat(np.arange(4), 15)
    return centres[truth] + rng.normal(0, 0.5, (60, 5)), truth


def test_elbow_and_silhouette_find_four_blobs(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    x, truth = blobs
    sweep = sweep_k(x, max_k=8)
    assert sweep.ks == list(range(1, 9))
    assert all(a > b for a, b in zip(sweep.inertias, sweep.inertias[1:], strict=False))
    assert sweep.silhouettes[0] is None
    assert elbow_k(sweep.ks, sweep.inertias) == 4
    assert suggest_k(sweep) == (4, "silhouette")
    labels = [str(t) for t in truth]
    assert purity(sweep.labels[4], labels) == 1.0
    assert inverse_purity(sweep.labels[4], labels) == 1.0
    assert purity(sweep.labels[2], labels) == 0.5  # two blobs per cluster


def test_sweep_caps_k_at_the_number_of_rows() -> None:
    x = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    sweep = sweep_k(x, max_k=10)
    assert sweep.ks == [1, 2, 3]
    assert sweep.silhouettes[2] is None  # k = n: undefined
    with pytest.raises(FacestreamError, match="at least 2 faces"):
        sweep_k(x[:1], max_k=3)


def test_purity_hand_computed() -> None:
    assert purity([0, 0, 1, 1, 1], ["a", "a", "a", "b", "b"]) == pytest.approx(4 / 5)
    assert inverse_purity([0, 0, 1, 1, 1], ["a", "a", "a", "b", "b"]) == pytest.approx(4 / 5)
    assert purity([0, 0, 0], ["a", "b", "c"]) == pytest.approx(1 / 3)
    assert inverse_purity([0, 0, 0], ["a", "b", "c"]) == 1.0
    assert purity([0, 1, 2], ["a", "a", "a"]) == 1.0
    assert inverse_purity([0, 1, 2], ["a", "a", "a"]) == pytest.approx(1 / 3)


def test_order_by_size_and_projection() -> None:
    assert order_by_size(np.array([5, 2, 2, 7, 7, 7])).tolist() == [2, 1, 1, 0, 0, 0]
    points = project_2d(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert points.shape == (3, 2) and np.isfinite(points).all()
    assert project_2d(np.array([[1.0, 0.0]])).tolist() == [[0.0, 0.0]]
