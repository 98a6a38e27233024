"""A result may carry the matched embeddings (events keeps those of Unknown faces)."""

from __future__ import annotations

import numpy as np
import pytest

from bus.errors import WireError
from bus.records import Face, MatchResult, record_from_message
from bus.wire import decode


def _result(vectors: np.ndarray | None) -> MatchResult:
    faces = [
        Face((1, 2, 30, 30), 0.9, crop_index=0, name="Unknown", similarity=0.1),
        Face((50, 2, 30, 30), 0.8),
    ]
    return MatchResult("cam0", 3, 10, frame_size=(176, 144), faces=faces, model_id="m", vectors=vectors)


def test_vectors_travel_with_the_result() -> None:
    vec = np.random.default_rng(0).standard_normal((1, 128)).astype(np.float32)
    back = record_from_message(decode(_result(vec).to_frames()))
    assert isinstance(back, MatchResult) and back.vectors is not None
    np.testing.assert_array_equal(back.vectors, vec)
    plain = record_from_message(decode(_result(None).to_frames()))
    assert isinstance(plain, MatchResult) and plain.vectors is None


def test_vectors_must_fit_the_faces() -> None:
    with pytest.raises(WireError, match="crop_index"):
        _result(np.zeros((2, 128), np.float32))
    with pytest.raises(WireError, match="float32"):
        _result(np.zeros((1, 128), np.float64))
