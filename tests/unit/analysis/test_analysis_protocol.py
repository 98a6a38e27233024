"""k-fold verification accuracy and leave-one-out identification on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.protocol import (
    accuracy_at,
    best_threshold,
    identification_accuracy,
    kfold_accuracy,
    stratified_folds,
)
from bus.errors import FacestreamError


def test_best_threshold_midpoint_and_ties() -> None:
    # candidates 0.3, 0.4, 0.55, 0.7, >0.8 -> accuracy 2/4, 3/4, 2/4, 3/4, 2/4: lowest best wins
    t, acc = best_threshold(np.array([0.8, 0.3, 0.5, 0.6]), np.array([True, False, True, False]))
    assert (t, acc) == (pytest.approx(0.4), 0.75)
    t, acc = best_threshold(np.array([0.9, 0.8, 0.2, 0.3]), np.array([True, True, False, False]))
    assert (t, acc) == (pytest.approx(0.55), 1.0)


def test_kfold_threshold_comes_from_the_other_folds() -> None:
    scores = np.array([0.9, 0.2, 0.8, 0.3, 0.5, 0.6])
    same = np.array([True, False, True, False, True, False])
    folds = np.array([0, 0, 1, 1, 2, 2])
    r = kfold_accuracy(scores, same, folds)
    # fold 0 trained on {.8 s, .3 d, .5 s, .6 d} -> 0.4; fold 1 on {.9, .2, .5, .6} -> 0.35;
    # fold 2 on {.9, .2, .8, .3} -> 0.55, which rejects its .5 genuine and accepts its .6 impostor.
    assert r.thresholds == pytest.approx([0.4, 0.35, 0.55])
    assert r.accuracies == [1.0, 1.0, 0.0]
    assert r.sizes == [2, 2, 2]
    assert r.mean == pytest.approx(2 / 3)
    assert r.std == pytest.approx(math.sqrt(2) / 3)


def test_kfold_needs_two_folds() -> None:
    with pytest.raises(FacestreamError, match="at least 2 folds"):
        kfold_accuracy(np.array([0.1, 0.9]), np.array([False, True]), np.array([0, 0]))


def test_accuracy_at_threshold_inclusive() -> None:
    assert accuracy_at(np.array([0.5, 0.4]), np.array([True, False]), 0.5) == 1.0
    assert accuracy_at(np.array([0.5, 0.4]), np.array([True, False]), 0.51) == 0.5


def test_stratified_folds_deal_each_class_round_robin() -> None:
    same = np.array([True, False, True, False, False, True, False])
    assert stratified_folds(same, 2).tolist() == [0, 0, 1, 1, 0, 0, 1]


def _unit(deg: float) -> np.ndarray:
    r = math.radians(deg)
    return np.array([math.cos(r), math.sin(r)])


def test_identification_leave_one_out() -> None:
    # a1 0, a2 20, b1 90, b2 50 degrees; c alone at 180 (a distractor, never a probe).
    vectors = np.stack([_unit(0), _unit(20), _unit(90), _unit(50), _unit(180)])
    labels = ["a", "a", "b", "b", "c"]
    r = identification_accuracy(vectors, labels, threshold=math.cos(math.radians(25)))
    # a1 -> a2 (20) ok; a2 -> a1 (20) ok; b1 -> b2 (40) ok but below cos 25; b2 -> a2 (30) wrong.
    assert (r.probes, r.correct, r.correct_above_threshold) == (4, 3, 2)
    assert r.rank1 == 0.75 and r.rank1_at_threshold == 0.5


def test_identification_without_repeat_people_has_no_probes() -> None:
    r = identification_accuracy(np.stack([_unit(0), _unit(90)]), ["a", "b"])
    assert r.probes == 0 and math.isnan(r.rank1)
