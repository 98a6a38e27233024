"""The frame/result join: a frame leaves with its own result or with none, never another's."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.records import Face, Frame, MatchResult
from overlay.join import FrameJoin
from overlay.tally import REORDER_SLACK, CameraTally, PublishedCheck

IMAGE = np.zeros((4, 4, 3), np.uint8)


def _frame(seq: int) -> Frame:
    return Frame("cam", seq, 1_000 + seq, image=IMAGE)


def _result(seq: int, name: str = "x", published: int | None = None) -> MatchResult:
    face = Face(box=(0, 0, 2, 2), score=0.9, name=name, similarity=0.9)
    return MatchResult("cam", seq, 1_000 + seq, frame_size=(4, 4), faces=[face], published=published)


def test_a_frame_waits_for_its_own_result_then_leaves_in_order() -> None:
    join = FrameJoin(hold_s=1.0)
    for seq in range(3):
        join.add_frame(_frame(seq), now=0.0)
    join.add_result(_result(1), 5)
    assert join.release(now=0.5) == []  # frame 0 is still within its hold
    join.add_result(_result(0), 6)
    out = join.release(now=0.6)
    assert [(j.frame.seq, j.result.seq if j.result else None) for j in out] == [(0, 0), (1, 1)]
    assert len(join) == 1


def test_an_overdue_frame_leaves_bare_even_when_a_newer_result_is_there() -> None:
    join = FrameJoin(hold_s=0.2)
    join.add_frame(_frame(0), now=0.0)
    join.add_frame(_frame(1), now=0.0)
    join.add_result(_result(1, "other person"), 1)
    out = join.release(now=0.3)
    assert [(j.frame.seq, j.result) for j in out[:1]] == [(0, None)]  # not seq 1's faces
    assert out[1].result is not None and out[1].result.seq == 1


def test_late_frames_and_results_of_shown_frames_are_refused() -> None:
    join = FrameJoin(hold_s=0.0)
    join.add_frame(_frame(5), now=0.0)
    assert [j.frame.seq for j in join.release(now=0.0)] == [5]
    assert not join.add_frame(_frame(4), now=0.0)
    assert not join.add_result(_result(5), 0)
    assert join.late == 1 and join.missing == 5  # seqs 0-4 never arrived before 5


def test_results_for_frames_that_never_come_do_not_pile_up() -> None:
    join = FrameJoin(hold_s=0.0, max_results=4)
    for seq in range(10):
        join.add_result(_result(seq), 0)
    join.add_frame(_frame(20), now=0.0)
    join.release(now=0.0)
    assert join.add_result(_result(21), 0) and not join.add_result(_result(19), 0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 30), st.booleans(), st.booleans()), min_size=1, max_size=60),
    st.floats(0.0, 2.0),
)
def test_any_arrival_order_never_pairs_a_frame_with_another_frames_result(
    events: list[tuple[int, bool, bool]], hold: float
) -> None:
    join = FrameJoin(hold_s=hold, max_frames=8)
    shown = []
    now = 0.0
    for seq, is_frame, force in events:
        now += 0.1
        if is_frame:
            join.add_frame(_frame(seq), now)
        else:
            join.add_result(_result(seq, name=f"person-{seq}"), 0)
        shown.extend(join.release(now, force=force))
    shown.extend(join.release(now, force=True))
    seqs = [j.frame.seq for j in shown]
    assert seqs == sorted(set(seqs))  # in order, each once
    for joined in shown:
        if joined.result is not None:
            assert joined.result.seq == joined.frame.seq
            assert all(f.name == f"person-{joined.frame.seq}" for f in joined.result.faces)


def test_published_gaps_count_drops_and_implausible_jumps_are_refused() -> None:
    check = PublishedCheck()
    assert check.dropped_before(_result(0, published=1)) == 0
    assert check.dropped_before(_result(4, published=3)) == 1  # result 2 was lost
    assert check.dropped_before(_result(5, published=10**15)) is None  # forged
    assert check.last == 3  # the forged number is not taken over
    assert check.dropped_before(_result(6, published=4)) == 0
    assert check.dropped_before(_result(7, published=5 + REORDER_SLACK + 2)) is None
    assert check.dropped_before(_result(8, published=1)) == 0  # match restarted
    assert check.dropped_before(_result(9, published=0)) is None


def test_tally_counts_faces_only_of_frames_with_their_result() -> None:
    from overlay.join import Joined

    tally = CameraTally("cam")
    tally.count(Joined(_frame(0), None))
    tally.count(Joined(_frame(1), _result(1, "ann"), 1_000 + 1 + 5_000_000))
    out = tally.as_dict()
    assert out["frames"] == 2 and out["frames_without_result"] == 1 and out["faces"] == 1
    assert out["identities"] == ["ann"] and out["latency_ms"]["p50"] == 5.0


def test_the_hold_follows_how_late_results_come_within_bounds() -> None:
    join = FrameJoin(hold_s=0.2, max_hold_s=2.0)
    assert join.hold == 2.0  # nothing answered yet (start-up: every face is new): wait long
    join.add_frame(_frame(0), now=0.0)
    join.add_result(_result(0), 0, now=0.1)
    assert [j.result is not None for j in join.release(now=0.1)] == [True]
    assert join.hold == 0.2  # results come fast: frames wait no longer than hold_s
    join.add_frame(_frame(1), now=1.0)
    assert [j.result for j in join.release(now=1.3)] == [None]  # shown bare after 0.2 s ...
    assert not join.add_result(_result(1), 0, now=1.8)  # ... its result came 0.8 s late
    assert join.hold > 0.8  # from now on frames wait long enough for such results
    shown = []
    for seq in range(2, 20):
        join.add_frame(_frame(seq), now=float(seq))
        shown += join.release(now=seq + 0.3)
        join.add_result(_result(seq), 0, now=seq + 0.8)
        shown += join.release(now=seq + 0.8)
    assert [(j.frame.seq, j.result is not None) for j in shown] == [(s, True) for s in range(2, 20)]
    for seq in range(20, 80):  # results 10 s late: the hold stops at max_hold_s
        join.add_frame(_frame(seq), now=float(seq))
        join.add_result(_result(seq), 0, now=seq + 10.0)
    assert join.hold == 2.0
