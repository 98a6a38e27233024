"""Frames of a camera are named in the order detect sent them, whichever path they took."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.records import Embeddings
from match.order import InOrder


def _rec(seq: int, after: int | None, camera: str = "cam") -> Embeddings:
    return Embeddings(camera, seq, seq, vectors=np.zeros((0, 4), np.float32), after=after)


def test_a_frame_waits_for_the_one_it_follows() -> None:
    order = InOrder(wait_s=1.0)
    assert [r.seq for r in order.add(_rec(0, None), 0.0)] == [0]
    assert order.add(_rec(2, 1), 0.1) == []  # frame 1 (with a face to embed) is still in embed
    assert order.add(_rec(3, 2), 0.2) == []
    assert [r.seq for r in order.add(_rec(1, 0), 0.3)] == [1, 2, 3]
    assert len(order) == 0


def test_a_lost_frame_holds_the_rest_up_for_wait_s_only() -> None:
    order = InOrder(wait_s=0.5)
    order.add(_rec(0, None), 0.0)
    assert order.add(_rec(2, 1), 0.1) == [] and order.add(_rec(3, 2), 0.2) == []
    assert order.due(0.5) == []
    assert [r.seq for r in order.due(0.61)] == [2, 3]
    assert order.released_early == 1
    assert [r.seq for r in order.add(_rec(1, 0), 0.7)] == [1]  # it came after all: still named


def test_cameras_do_not_wait_for_each_other_and_an_end_flushes() -> None:
    order = InOrder()
    assert order.add(_rec(5, 4, "a"), 0.0) == []
    assert [r.seq for r in order.add(_rec(7, None, "b"), 0.0)] == [7]
    assert [r.seq for r in order.flush("a")] == [5] and order.flush("a") == []


@settings(max_examples=100, deadline=None)
@given(st.permutations(list(range(30))), st.sets(st.integers(1, 29), max_size=5))
def test_any_arrival_order_is_named_in_send_order(arrival: list[int], lost: set[int]) -> None:
    """One chain of 30 frames (some lost on the way) arriving in any order: what is released
    without waiting out a gap comes in send order, and nothing is released twice or never."""
    order = InOrder(wait_s=1.0)
    named: list[int] = []
    for step, seq in enumerate(arrival):
        if seq not in lost:
            named += [r.seq for r in order.add(_rec(seq, seq - 1 if seq else None), step * 0.01)]
    named += [r.seq for r in order.due(100.0)]
    assert sorted(named) == [s for s in range(30) if s not in lost]
    if not lost:
        assert named == list(range(30))
