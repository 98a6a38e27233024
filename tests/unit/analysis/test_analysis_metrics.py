"""ROC, EER, FAR/FRR and threshold-at-FAR on small hand-computed score sets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.metrics import (
    THRESHOLD_MARGIN,
    allowed_false_accepts,
    equal_error_rate,
    far_frr_at,
    far_frr_table,
    pair_scores,
    roc_curve,
    threshold_at_far,
)
from bus.errors import FacestreamError


def test_roc_curve_steps_exactly() -> None:
    roc = roc_curve(np.array([0.6, 0.7, 0.8, 0.9]), np.array([0.1, 0.2, 0.3, 0.65]))
    assert roc.thresholds[:-1].tolist() == [0.1, 0.2, 0.3, 0.6, 0.65, 0.7, 0.8, 0.9]
    assert roc.thresholds[-1] == np.nextafter(0.9, 1.0)
    assert roc.far.tolist() == [1, 0.75, 0.5, 0.25, 0.25, 0, 0, 0, 0]
    assert roc.frr.tolist() == [0, 0, 0, 0, 0.25, 0.25, 0.5, 0.75, 1]
    assert roc.tar.tolist() == [1, 1, 1, 1, 0.75, 0.75, 0.5, 0.25, 0]


def test_eer_where_the_steps_meet() -> None:
    # At any threshold in (0.6, 0.65]: FAR = 1/4 (0.65 accepted), FRR = 1/4 (0.6 rejected).
    eer = equal_error_rate(roc_curve(np.array([0.6, 0.7, 0.8, 0.9]), np.array([0.1, 0.2, 0.3, 0.65])))
    assert eer.rate == 0.25
    assert eer.threshold == pytest.approx(0.625)


def test_eer_interpolated_between_roc_points() -> None:
    # t=0.5: FAR 1/2, FRR 1/3; t=0.8: FAR 0, FRR 1/3. FAR - FRR goes 1/6 -> -1/3, so a = 1/3:
    # EER = 1/2 + (0 - 1/2)/3 = 1/3 (= FRR there), threshold 0.5 + 0.3/3 = 0.6.
    eer = equal_error_rate(roc_curve(np.array([0.3, 0.8, 0.9]), np.array([0.1, 0.5])))
    assert eer.rate == pytest.approx(1 / 3)
    assert eer.threshold == pytest.approx(0.6)


def test_eer_zero_for_separable_scores_with_threshold_in_the_gap() -> None:
    eer = equal_error_rate(roc_curve(np.array([0.6, 0.7]), np.array([0.1, 0.2])))
    assert eer.rate == 0.0
    assert eer.threshold == pytest.approx(0.4)  # middle of (0.2, 0.6]


def test_eer_of_two_gaussians() -> None:
    # N(+1, 1) genuine vs N(-1, 1) impostor: FAR = FRR at 0, EER = Phi(-1).
    rng = np.random.default_rng(7)
    genuine, impostor = rng.normal(1, 1, 200_000), rng.normal(-1, 1, 200_000)
    eer = equal_error_rate(roc_curve(genuine, impostor))
    phi = 0.5 * math.erfc(1 / math.sqrt(2))
    assert eer.rate == pytest.approx(phi, abs=0.003)
    assert eer.threshold == pytest.approx(0.0, abs=0.02)


def test_threshold_at_far_is_just_above_the_allowed_impostors() -> None:
    impostor = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    assert threshold_at_far(impostor, 0.1) == 0.9 + THRESHOLD_MARGIN  # 1 of 10 may pass: 0.95
    assert threshold_at_far(impostor, 0.05) == 0.95 + THRESHOLD_MARGIN  # none may pass
    assert threshold_at_far(impostor, 0.25) == 0.8 + THRESHOLD_MARGIN  # 2 may pass
    assert threshold_at_far(impostor, 1.0) == 0.1  # all may pass
    genuine = np.array([0.85, 0.92, 0.99])
    assert far_frr_at(genuine, impostor, threshold_at_far(impostor, 0.1)) == (0.1, 1 / 3)
    # one threshold lower than the answer would accept one impostor too many
    lower = np.nextafter(0.9, 0.0)
    assert far_frr_at(genuine, impostor, lower)[0] == 0.2


def test_threshold_at_far_with_ties() -> None:
    # two impostors at 0.5: no threshold accepts exactly one of them
    assert threshold_at_far(np.array([0.5, 0.5, 0.3]), 1 / 3) == 0.5 + THRESHOLD_MARGIN
    assert far_frr_at(np.array([0.9]), np.array([0.5, 0.5, 0.3]), 0.5 + THRESHOLD_MARGIN) == (0.0, 0.0)


def test_allowed_false_accepts_rounding() -> None:
    assert allowed_false_accepts(100, 0.29) == 29  # 0.29 * 100 = 28.999999999999996 in floats
    assert allowed_false_accepts(1000, 0.001) == 1
    assert allowed_false_accepts(999, 0.001) == 0


def test_threshold_at_far_rejects_bad_target() -> None:
    with pytest.raises(FacestreamError, match="between 0 and 1"):
        threshold_at_far(np.array([0.1]), 1.5)
    with pytest.raises(FacestreamError, match="no impostor scores"):
        threshold_at_far(np.array([]), 0.1)


def test_pair_scores_split_by_label() -> None:
    a = np.array([1.0, 0.0])
    b = np.array([0.6, 0.8])
    c = np.array([0.0, 1.0])
    genuine, impostor = pair_scores(np.stack([a, b, c]), ["x", "x", "y"])
    assert genuine.tolist() == pytest.approx([0.6])  # a.b
    assert sorted(impostor.tolist()) == pytest.approx([0.0, 0.8])  # a.c, b.c


def test_far_frr_table_rows() -> None:
    genuine = np.array([0.6, 0.7, 0.8, 0.9])
    impostor = np.array([0.1, 0.2, 0.3, 0.65])
    rows = far_frr_table(genuine, impostor, targets=(0.25, 0.1), extra=[("model", 0.5)])
    assert [r.label for r in rows] == ["FAR<=0.25", "FAR<=0.1", "model"]
    assert rows[0].threshold == 0.3 + THRESHOLD_MARGIN and (rows[0].far, rows[0].frr) == (0.25, 0.0)
    assert rows[1].threshold == 0.65 + THRESHOLD_MARGIN and (rows[1].far, rows[1].frr) == (0.0, 0.25)
    assert (rows[2].threshold, rows[2].far, rows[2].frr) == (0.5, 0.25, 0.0)
