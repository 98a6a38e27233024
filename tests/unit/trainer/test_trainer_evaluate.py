"""Nearest-neighbour accuracy and the open-set rule (numpy only; no TensorFlow needed)."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.evaluate import class_centroids, fit_open_set, nn_accuracy, open_set_report


def unit(rows: list[list[float]]) -> np.ndarray:
    a = np.asarray(rows, np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def test_nn_accuracy_hand_case() -> None:
    gallery = unit([[1, 0], [0, 1]])
    labels = np.array([3, 5])
    probes = unit([[0.9, 0.1], [0.2, 0.8], [0.8, 0.3]])
    # nearest: 3, 5, 3 ; truth: 3, 5, 5 -> 2 of 3
    assert nn_accuracy(gallery, labels, probes, np.array([3, 5, 5])) == pytest.approx(2 / 3)
    assert np.isnan(nn_accuracy(gallery, labels, probes[:0], np.array([])))


def test_centroids_are_unit_means() -> None:
    emb = unit([[1, 0], [0.8, 0.6], [0, 1]])
    classes, cents = class_centroids(emb, np.array([1, 1, 2]))
    assert classes.tolist() == [1, 2]
    expected = np.array([1.8, 0.6]) / np.linalg.norm([1.8, 0.6])
    np.testing.assert_allclose(cents[0], expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(cents, axis=1), 1.0, atol=1e-6)


def test_open_set_threshold_comes_from_known_validation_only() -> None:
    train = unit([[1, 0], [1, 0.05], [0, 1], [0.05, 1]])
    labels = np.array([0, 0, 1, 1])
    # validation similarities to the nearest centroid, sorted: 0.8, 0.9, 0.95, 0.99, 1.0 -> 20 % quantile
    angles = np.arccos([0.8, 0.9, 0.95, 0.99, 1.0])
    centroid0 = class_centroids(train, labels)[1][0]
    base = np.arctan2(centroid0[1], centroid0[0])
    val = np.stack([np.cos(base + angles), np.sin(base + angles)], axis=1).astype(np.float32)
    rule = fit_open_set(train, labels, val, accept_known=0.8)
    assert rule.threshold == pytest.approx(np.quantile([0.8, 0.9, 0.95, 0.99, 1.0], 0.2), abs=1e-4)

    known = unit([[1, 0.01], [0.01, 1]])
    unknown = unit([[1, 1], [-1, 0]])  # between the classes, and opposite to both
    pred, _ = rule.predict(np.concatenate([known, unknown]))
    assert pred.tolist() == [0, 1, -1, -1]
    report = open_set_report(rule, known, np.array([0, 1]), unknown)
    assert report["known_accuracy"] == 1.0 and report["unknown_rejection_rate"] == 1.0
    assert report["known_test"] == 2 and report["unknown_test"] == 2
