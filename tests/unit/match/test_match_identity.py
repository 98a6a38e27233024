"""Track names in match: votes, hysteresis (no flicker on one noisy match), cross-worker joins, expiry."""

from __future__ import annotations

from bus.records import Face
from bus.tracks import TRACK_ID_STRIDE
from match.identity import TrackNames

CAM = "cam0"


def _face(track_id: int | None, x: float = 100.0, quality: float | None = 0.5) -> Face:
    return Face(box=(x, 50.0, 120.0, 150.0), score=0.9, track_id=track_id, quality=quality)


def _tid(n: int, worker: int = 0) -> int:
    return n * TRACK_ID_STRIDE + worker


def _see(
    names: TrackNames, t: float, face: Face, vote: tuple[str, float] | None
) -> tuple[str | None, float | None]:
    names.name_faces(CAM, t, [face], {} if vote is None else {0: vote})
    return face.name, face.similarity


def test_faces_without_a_vector_get_their_tracks_name() -> None:
    names = TrackNames(window=5, max_age_s=1.0)
    assert _see(names, 0.0, _face(_tid(1)), None) == (None, None)  # nothing known yet
    assert _see(names, 0.1, _face(_tid(1)), ("obama", 0.61)) == ("obama", 0.61)
    for step in range(2, 10):
        assert _see(names, step / 10, _face(_tid(1)), None) == ("obama", 0.61)
    assert _see(names, 1.0, _face(_tid(2), x=400), None) == (None, None)  # another face


def test_one_noisy_match_does_not_flip_the_name() -> None:
    names = TrackNames(window=5)
    shown = []
    votes = [("obama", 0.62), ("obama", 0.58), ("obama", 0.64), ("biden", 0.40), ("obama", 0.60)]
    for step, vote in enumerate(votes):
        shown.append(_see(names, step * 0.1, _face(_tid(1)), vote))
        shown.append(_see(names, step * 0.1 + 0.05, _face(_tid(1)), None))
    assert [n for n, _ in shown] == ["obama"] * 10
    assert shown[7] == ("obama", 0.64)  # the similarity shown is the last one of the shown name


def test_an_embedding_below_the_threshold_withdraws_the_name_at_once() -> None:
    names = TrackNames(window=5)
    for step in range(4):
        _see(names, step * 0.1, _face(_tid(1)), ("obama", 0.62))
    assert _see(names, 0.4, _face(_tid(1)), ("Unknown", 0.20)) == ("Unknown", 0.20)
    assert _see(names, 0.45, _face(_tid(1)), None) == ("Unknown", 0.20)  # not back to obama
    assert _see(names, 0.5, _face(_tid(1)), ("obama", 0.61))[0] == "Unknown"  # one against one: kept
    assert _see(names, 0.6, _face(_tid(1)), ("obama", 0.63))[0] == "obama"


def test_another_person_vetoes_the_name_when_the_face_no_longer_matches_it() -> None:
    names = TrackNames(window=5)
    support = {"macron": False}
    for step in range(4):
        names.name_faces(CAM, step * 0.1, [_face(_tid(1))], {0: ("macron", 0.6)})
    face = _face(_tid(1))
    names.name_faces(CAM, 0.4, [face], {0: ("ardern", 0.55)}, lambda pos, name: support[name])
    assert (face.name, face.similarity) == ("ardern", 0.55)
    # Both fit (two look-alikes above the threshold): the vote decides, one does not flip it.
    support = {"ardern": True}
    face = _face(_tid(1))
    names.name_faces(CAM, 0.5, [face], {0: ("macron", 0.58)}, lambda pos, name: support[name])
    assert face.name == "ardern"


def test_a_lasting_change_wins_the_vote_but_a_tie_keeps_the_name() -> None:
    names = TrackNames(window=4)
    for step in range(2):
        _see(names, step * 0.1, _face(_tid(1)), ("Unknown", 0.30))
    assert _see(names, 0.2, _face(_tid(1)), ("ardern", 0.45))[0] == "Unknown"
    assert _see(names, 0.3, _face(_tid(1)), ("ardern", 0.47))[0] == "Unknown"  # 2 against 2
    assert _see(names, 0.4, _face(_tid(1)), ("ardern", 0.50)) == ("ardern", 0.50)


def test_better_faces_count_more() -> None:
    names = TrackNames(window=5)
    _see(names, 0.0, _face(_tid(1), quality=0.1), ("Unknown", 0.30))  # a blurred profile first
    assert _see(names, 0.1, _face(_tid(1), quality=0.6), ("macron", 0.55)) == ("macron", 0.55)


def test_tracks_of_two_workers_share_one_name() -> None:
    names = TrackNames(window=5, link_iou=0.3)
    a, b = _tid(1, worker=0), _tid(1, worker=1)
    assert _see(names, 0.00, _face(a, x=100), ("obama", 0.6))[0] == "obama"
    assert _see(names, 0.03, _face(b, x=104), None)[0] == "obama"  # joined by overlap
    assert _see(names, 0.06, _face(b, x=108), ("biden", 0.38))[0] == "obama"  # one vote among two
    assert len(names.people(CAM)) == 1


def test_a_new_track_of_the_same_worker_is_another_face() -> None:
    """Detect started a new track at the same place (a scene cut): it must not inherit the name."""
    names = TrackNames(window=5)
    _see(names, 0.0, _face(_tid(1)), ("macron", 0.6))
    assert _see(names, 0.1, _face(_tid(2), x=102), None) == (None, None)
    assert _see(names, 0.2, _face(_tid(2), x=102), ("ardern", 0.5))[0] == "ardern"
    assert len(names.people(CAM)) == 2


def test_people_expire_and_cameras_end() -> None:
    names = TrackNames(window=5, max_age_s=1.0)
    _see(names, 0.0, _face(_tid(1)), ("obama", 0.6))
    assert _see(names, 0.9, _face(_tid(1)), None)[0] == "obama"
    assert _see(names, 2.5, _face(_tid(1)), None)[0] is None  # unseen 1.6 s: forgotten
    names.end(CAM)
    assert names.people(CAM) == []


def test_untracked_faces_show_their_own_match() -> None:
    names = TrackNames()
    faces = [_face(None), _face(None, x=400)]
    names.name_faces(CAM, 0.0, faces, {0: ("obama", 0.7)})
    assert (faces[0].name, faces[0].similarity) == ("obama", 0.7)
    assert (faces[1].name, faces[1].similarity) == (None, None)
    assert names.people(CAM) == []


def test_an_older_frame_arriving_late_does_not_age_a_track() -> None:
    """The embedding of frame 1 comes after the faces-only frames 2-9 (two paths into match):
    the track must still count as seen at frame 9, so that a new track of the same worker at the
    same place (someone else stepped in) never takes over its name."""
    names = TrackNames(window=5, max_age_s=1.0)
    old = _tid(1)
    _see(names, 0.0, _face(old), ("obama", 0.7))
    for step in range(2, 10):
        _see(names, step * 0.1, _face(old), None)
    _see(names, 0.1, _face(old), ("obama", 0.7))  # frame 1's embedding, late
    # 1.15 s after frame 1 but 0.25 s after frame 9: the old track is alive, the newcomer is not it.
    assert _see(names, 1.15, _face(_tid(2), x=101), None) == (None, None)


def test_a_new_track_of_a_worker_never_inherits_that_workers_old_identity() -> None:
    names = TrackNames(window=5, max_age_s=1.0)
    _see(names, 0.0, _face(_tid(1, worker=0)), ("obama", 0.7))
    for step in range(1, 13):  # worker 1 sees the same face (frames without affinity) and goes on
        _see(names, step * 0.1, _face(_tid(1, worker=1)), None)
    # Worker 0's old track ended (unseen 1.25 s); the identity lives on through worker 1. Worker
    # 0's new track at that place is another face until its own embedding says who it is.
    assert _see(names, 1.25, _face(_tid(2, worker=0), x=101), None) == (None, None)
    assert _see(names, 1.3, _face(_tid(1, worker=1), x=101), None)[0] == "obama"  # worker 1 goes on
