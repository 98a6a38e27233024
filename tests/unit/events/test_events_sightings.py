"""Sightings from results: tracks, names, best similarity, the best face's vector, ending."""

from __future__ import annotations

import numpy as np

from bus.records import Face, MatchResult
from events.sightings import SightingBook


def _result(
    seq: int, faces: list[Face], vectors: np.ndarray | None = None, camera: str = "cam0"
) -> MatchResult:
    return MatchResult(
        camera,
        seq,
        1_000_000_000 * (100 + seq),
        frame_size=(640, 480),
        faces=faces,
        model_id="m",
        vectors=vectors,
    )


def _face(
    track: int | None,
    name: str | None,
    sim: float | None = None,
    quality: float = 0.5,
    crop: int | None = None,
    x: float = 10,
) -> Face:
    return Face(
        (x, 10, 50, 50), 0.9, track_id=track, name=name, similarity=sim, quality=quality, crop_index=crop
    )


def test_one_sighting_per_track_named_once_known() -> None:
    book = SightingBook(end_after_s=2.0)
    vec = np.ones((1, 4), np.float32) / 2
    assert book.observe(_result(0, [_face(64, None)])) == []  # not named yet: no snapshot wanted
    wants = book.observe(_result(1, [_face(64, "Unknown", 0.2, 0.4, crop=0)], vec))
    assert len(wants) == 1  # first snapshot
    book.observe(_result(2, [_face(64, "alice", 0.6), _face(128, "Unknown", 0.1, x=300)]))
    book.observe(_result(3, [_face(64, "alice", 0.7)]))
    live = book.live["cam0"]
    assert len(live) == 2
    first = live[0]
    assert first.name == "alice" and first.frames == 4
    update = first.update()
    assert update is not None and update.best_similarity == 0.7 and update.first_seen_ms == 100_000
    assert update.last_seen_ms == 103_000 and update.embedding == vec[0].astype("<f4").tobytes()
    assert live[1].name == "Unknown"
    assert [s.uid for s in book.changed()] == [first.uid, live[1].uid] and book.changed() == []


def test_snapshot_wanted_again_only_for_a_clearly_better_face() -> None:
    book = SightingBook(end_after_s=2.0)
    ((sighting, _face0),) = book.observe(_result(0, [_face(64, "bob", quality=0.5)]))
    sighting.snapshot_quality = 0.5
    assert book.observe(_result(1, [_face(64, "bob", quality=0.55)])) == []
    assert len(book.observe(_result(2, [_face(64, "bob", quality=0.65)]))) == 1


def test_untracked_faces_link_by_overlap_and_sightings_end() -> None:
    book = SightingBook(end_after_s=2.0)
    book.observe(_result(0, [_face(None, "Unknown", x=10), _face(None, "Unknown", x=300)]))
    book.observe(_result(1, [_face(None, "Unknown", x=14)]))
    assert sorted(s.frames for s in book.live["cam0"]) == [1, 2]
    ended = book.expire(now_ns=1_000_000_000 * 104)
    assert len(ended) == 2 and book.live["cam0"] == []
    book.observe(_result(0, [_face(64, "x")], camera="cam1"))
    assert len(book.end_camera("cam1")) == 1
