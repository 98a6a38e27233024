"""The face tracker: IoU association, ids kept across real frames, re-embedding rules, expiry, cuts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bus.errors import FacestreamError
from bus.geometry import box_iou as iou
from bus.records import Face
from bus.tracks import TRACK_ID_STRIDE
from detect.follow import make_template
from detect.quality import face_quality
from detect.tracker import Observation, Tracker, observe, thumbnail
from detect.yunet import YuNetDetector
from faces.images import letterbox


def _face(x: float, y: float, side: float = 100.0) -> Face:
    return Face(box=(x, y, side, side), score=0.9)


def _obs(x: float, y: float, quality: float = 0.5, side: float = 100.0) -> Observation:
    return Observation(_face(x, y, side), quality)


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_faces_keep_their_ids_by_overlap_whatever_the_detection_order() -> None:
    tracker = Tracker(first_id=1, warmup=0)
    first = tracker.update([_obs(0, 0), _obs(300, 0)], now_s=0.0)
    left, right = first[0].track_id, first[1].track_id
    assert left != right and all(d.embed and d.reason == "new" for d in first)
    for step in range(1, 20):  # both drift right by 5 px a frame; the detector lists them swapped
        now = step / 30
        got = tracker.update([_obs(300 + 5 * step, 0), _obs(5 * step, 0)], now_s=now)
        assert [d.track_id for d in got] == [right, left]
        assert not any(d.embed for d in got)  # same quality, interval not reached
    third = tracker.update([_obs(95, 0), _obs(395, 0), _obs(600, 300)], now_s=0.7)
    assert [d.track_id for d in third[:2]] == [left, right]
    assert third[2].track_id not in (left, right) and third[2].embed and third[2].reason == "new"


def test_no_overlap_means_a_new_track() -> None:
    tracker = Tracker(first_id=1, iou_min=0.3)
    a = tracker.update([_obs(0, 0)], 0.0)[0]
    b = tracker.update([_obs(80, 0)], 0.03)[0]  # IoU 20/180 = 0.11
    assert a.track_id != b.track_id and b.reason == "new"


def test_reembed_only_on_better_quality_or_after_the_interval() -> None:
    tracker = Tracker(first_id=1, reembed_interval_s=2.0, reembed_gain=0.25, max_age_s=5.0, warmup=0)
    assert tracker.update([_obs(0, 0, quality=0.40)], 0.0)[0].reason == "new"
    reasons = []
    for step, quality in enumerate([0.42, 0.45, 0.50, 0.30, 0.53, 0.60, 0.20], start=1):
        reasons.append(tracker.update([_obs(step, 0, quality=quality)], step * 0.1)[0].reason)
    # 0.53 > 0.40 * 1.25 + 0.02 is better; 0.60 < 0.53 * 1.25 + 0.02 is not
    assert reasons == ["", "", "", "", "better", "", ""]
    late = tracker.update([_obs(8, 0, quality=0.1)], 2.6)[0]  # 2.1 s after the last embedding
    assert late.embed and late.reason == "interval"
    assert not tracker.update([_obs(8, 0, quality=0.1)], 2.7)[0].embed


def test_a_young_track_is_embedded_again_sooner() -> None:
    """A new face's first embedding may be lost on the way: 0.25, 0.5, 1 s, then every 2 s."""
    tracker = Tracker(first_id=1, reembed_interval_s=2.0, reembed_gain=10.0, max_age_s=5.0, warmup=3)
    embedded_at = [
        round(step / 100, 2)
        for step in range(0, 800)  # 8 s of frames at 100 fps, constant quality
        if tracker.update([_obs(0, 0)], step / 100)[0].embed
    ]
    assert embedded_at == [0.0, 0.25, 0.75, 1.75, 3.75, 5.75, 7.75]


def test_the_default_warmup_embeds_a_new_face_once_more_after_half_the_interval() -> None:
    from bus.config import DetectConfig

    cfg = DetectConfig()
    tracker = Tracker(first_id=1, reembed_gain=10.0, max_age_s=5.0, warmup=cfg.reembed_warmup)
    assert tracker.reembed_interval_s == cfg.reembed_interval_s == 2.0
    embedded_at = [
        round(step / 100, 2) for step in range(0, 600) if tracker.update([_obs(0, 0)], step / 100)[0].embed
    ]
    assert embedded_at == [0.0, 1.0, 3.0, 5.0]


def test_lost_tracks_expire() -> None:
    tracker = Tracker(first_id=1, max_age_s=1.0)
    tid = tracker.update([_obs(0, 0)], 0.0)[0].track_id
    assert tracker.update([], 0.5) == []
    assert tracker.update([_obs(2, 0)], 0.9)[0].track_id == tid  # unseen 0.9 s: still the same face
    assert tracker.update([], 1.5) == [] and len(tracker.tracks) == 1
    back = tracker.update([_obs(2, 0)], 2.0)[0]  # unseen 1.1 s: the track ended
    assert back.track_id != tid and back.reason == "new" and len(tracker.tracks) == 1


def test_ids_are_unique_per_worker() -> None:
    ids = {w: Tracker(worker=w, first_id=1).update([_obs(0, 0)], 0.0)[0].track_id for w in (0, 1, 5)}
    assert len(set(ids.values())) == 3
    assert {w: i % TRACK_ID_STRIDE for w, i in ids.items()} == {0: 0, 1: 1, 5: 5}
    with pytest.raises(FacestreamError, match="worker"):
        Tracker(worker=TRACK_ID_STRIDE)


def _track(tracker: Tracker, image: np.ndarray, faces: list[Face], now: float) -> list[int]:
    obs = [Observation(f, face_quality(image, f), thumbnail(image, f)) for f in faces]
    return [d.track_id for d in tracker.update(obs, now)]


def test_the_carphone_driver_keeps_one_track(carphone: list[np.ndarray], yunet: YuNetDetector) -> None:
    tracker = Tracker(first_id=1, reembed_interval_s=10.0)
    ids, embeds = [], 0
    for i, frame in enumerate(carphone):
        big = cv2.resize(frame, (640, 480))
        faces = yunet.detect(big)
        assert len(faces) == 1, i
        obs = [Observation(f, face_quality(big, f), thumbnail(big, f)) for f in faces]
        decision = tracker.update(obs, i / 29.97)[0]
        ids.append(decision.track_id)
        embeds += decision.embed
    main = max(set(ids), key=ids.count)
    assert ids.count(main) >= 0.9 * len(ids), ids
    assert len(set(ids)) <= 3
    assert embeds <= 12, f"{embeds} embeddings for 120 frames of one face"


def test_every_other_frame_keeps_the_track_too(carphone: list[np.ndarray], yunet: YuNetDetector) -> None:
    """With two detect workers each sees every second frame of a camera."""
    tracker = Tracker(first_id=1)
    ids = [_track(tracker, f, yunet.detect(f), i / 29.97)[0] for i, f in enumerate(carphone) if i % 2 == 0]
    assert max(ids.count(i) for i in set(ids)) >= 0.9 * len(ids)


def test_a_scene_cut_to_another_face_at_the_same_place_starts_a_new_track(
    photos: dict[str, np.ndarray], yunet: YuNetDetector
) -> None:
    macron = letterbox(photos["macron_2"], (640, 480))
    ardern = letterbox(photos["ardern_2"], (640, 480))
    fm, fa = yunet.detect(macron)[0], yunet.detect(ardern)[0]
    assert iou(fm.box, fa.box) > 0.6  # the boxes alone would continue the track
    tracker = Tracker(first_id=1)
    a = _track(tracker, macron, [fm], 0.0)
    b = _track(tracker, macron, yunet.detect(macron), 0.1)
    c = _track(tracker, ardern, [fa], 0.2)
    assert a == b and c != a


def _obs_on(image: np.ndarray, face: Face, box: tuple[float, float, float, float]) -> Observation:
    """An observation at `box` whose template is the real face's (a track that drifted off it)."""
    moved = Face(box=box, score=face.score, landmarks=face.landmarks)
    return Observation(moved, 0.5, None, make_template(image, face.box))


def test_one_face_never_shows_two_boxes(photos: dict[str, np.ndarray], yunet: YuNetDetector) -> None:
    image = letterbox(photos["macron_2"], (640, 480))
    face = yunet.detect(image)[0]
    x, y, w, h = face.box
    beside = (x + 0.4 * w, y, w, h)  # overlaps too little to be the same track
    tracker = Tracker(first_id=1)
    sure = tracker.update([_obs_on(image, face, face.box), _obs_on(image, face, beside)], 0.0)[0].track_id
    tracker.update([_obs_on(image, face, face.box), _obs_on(image, face, beside)], 0.1)
    tracker.tracks[0].hits += 5  # the first track has been found far more often
    faces, _ = tracker.follow(image, 0.2)
    assert [f.track_id for f in faces] == [sure]  # both templates find the face; only one box


def test_a_track_the_detector_keeps_missing_ends(photos: dict[str, np.ndarray], yunet: YuNetDetector) -> None:
    image = letterbox(photos["macron_2"], (640, 480))
    face = yunet.detect(image)[0]
    tracker = Tracker(first_id=1)
    tracker.update([observe(image, face)], 0.0)
    tracker.update([], 0.1)  # one miss: following may bridge it (a blink, a roll)
    assert len(tracker.follow(image, 0.1, bridge=True)[0]) == 1
    assert tracker.unconfirmed  # the next detection should confirm it
    assert len(tracker.follow(image, 0.15)[0]) == 1
    tracker.update([], 0.2)  # two misses in a row: only a detection brings the face back
    assert tracker.follow(image, 0.2, bridge=True)[0] == []
    assert tracker.follow(image, 0.25)[0] == []
    assert not tracker.unconfirmed
    tracker.update([observe(image, face)], 0.3)
    assert tracker.follow(image, 0.35)[0] != []
