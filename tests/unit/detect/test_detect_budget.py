"""The detection budget's parts on rendered scenes with known truth: motion gate, template
following, the planner's choices and the load controller."""

from __future__ import annotations

import numpy as np
import pytest

from bus.geometry import box_iou
from deploy.assets import PHOTOS
from deploy.scenes import Actor, Cast, Key, Scene, crowd_scene, iter_frames, still_person, walking_person
from detect.budget import DetectBudget
from detect.follow import FOLLOW_MIN, follow, make_template
from detect.motion import MotionGate
from detect.planner import URGENT_SHARE, Mode, Planner
from detect.yunet import YuNetDetector

Frames = list[tuple[np.ndarray, list[dict]]]


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector()


@pytest.fixture(scope="module")
def cast() -> Cast:
    return Cast(PHOTOS)


@pytest.fixture(scope="module")
def crowd(yunet: YuNetDetector, cast: Cast) -> Frames:
    return list(iter_frames(crowd_scene(cast, frames=90), yunet))


def _box(face: dict) -> tuple[float, float, float, float]:
    return tuple(face["box"])


def test_a_still_scene_with_noise_shows_no_motion_and_a_moving_face_does(
    yunet: YuNetDetector, cast: Cast
) -> None:
    still = list(iter_frames(still_person(cast, frames=10), yunet))
    gate = MotionGate()
    assert gate.check(still[0][0])[0] is None  # nothing to compare with yet
    gate.measured(gate.check(still[0][0])[1])
    for image, _ in still[1:]:
        motion, _ = gate.check(image)
        assert motion is not None and not motion.any  # sensor noise is not motion
    walk = list(iter_frames(walking_person(cast, frames=20), yunet))
    gate = MotionGate()
    gate.measured(gate.check(walk[0][0])[1])
    motion, _ = gate.check(walk[1][0])  # the next frame: the face moved by 25 px
    assert motion is not None and motion.any and motion.share < 0.3
    face = _box(walk[1][1][0])
    assert not motion.outside([face])  # all of the change is around the face ...
    assert motion.outside([(0.0, 0.0, 50.0, 50.0)])  # ... and not in a corner


def test_following_keeps_each_face_between_detections(crowd: Frames) -> None:
    ious = []
    for start in range(0, 80, 10):
        for face in crowd[start][1]:
            template = make_template(crowd[start][0], _box(face))
            box = _box(face)
            for k in range(start + 1, start + 10):
                real = [f for f in crowd[k][1] if f["actor"] == face["actor"]]
                if not real:
                    break
                found = follow(crowd[k][0], template, box)
                assert found.score >= FOLLOW_MIN, (start, k, face["name"])
                ious.append(box_iou(found.box, _box(real[0])))
                box = found.box
    assert min(ious) >= 0.6 and float(np.mean(ious)) >= 0.9


def test_following_does_not_carry_a_face_onto_the_person_who_took_its_place(crowd: Frames) -> None:
    # Actor 3 (obama) sits at one place until frame 29; a stranger sits there from frame 30.
    before = next(f for f in crowd[29][1] if f["actor"] == 3)
    template = make_template(crowd[29][0], _box(before))
    assert follow(crowd[30][0], template, _box(before)).score < FOLLOW_MIN
    assert follow(crowd[28][0], template, _box(before)).score >= FOLLOW_MIN


@pytest.mark.parametrize(
    ("motion", "tracked", "interval", "expected"),
    [
        ("none", True, 0.0, Mode.STILL),  # nothing changed: boxes stand
        ("inside", True, 0.0, Mode.FOLLOW),  # the tracked faces moved
        ("outside", True, 0.0, Mode.FULL),  # something new may have come in
        ("outside", True, 5.0, Mode.FOLLOW),  # ... but the budget says not yet
        ("outside", False, 5.0, Mode.STILL),  # nothing to follow either
    ],
)
def test_planner_choices(
    yunet: YuNetDetector, cast: Cast, motion: str, tracked: bool, interval: float, expected: Mode
) -> None:
    walk = list(iter_frames(walking_person(cast, frames=8), yunet))
    face = _box(walk[1][1][0])
    gate = MotionGate()
    gate.measured(gate.check(walk[0][0])[1])
    change = {"none": walk[0][0], "inside": walk[1][0]}.get(motion)
    if change is None:  # a change far from the face: a patch of the background brightens
        change = walk[0][0].copy()
        change[380:470, 520:630] = np.clip(change[380:470, 520:630].astype(int) + 80, 0, 255).astype(np.uint8)
    seen, _ = gate.check(change)
    planner = Planner(refresh_s=10.0, last_full=10.0, full_wanted=False)
    boxes = [face, _box(walk[0][1][0])] if tracked else []
    assert planner.plan(12.0, seen, boxes, interval) is expected


def test_planner_refreshes_and_comes_back_for_lost_faces() -> None:
    planner = Planner(refresh_s=2.0)
    assert planner.plan(0.0, None, [], 0.0) is Mode.FULL  # the first frame
    planner.done(Mode.FULL, 0.0)
    box = [(10.0, 10.0, 50.0, 50.0)]
    assert planner.plan(1.0, None, box, 0.5) is Mode.FULL  # no reference: cannot tell what moved
    planner.done(Mode.FOLLOW, 1.0, lost_a_face=True)
    planner.done(Mode.FULL, 1.0)
    assert not planner.full_wanted
    planner.done(Mode.FOLLOW, 1.1, lost_a_face=True)
    assert planner.full_wanted
    planner.done(Mode.FULL, 1.2)
    assert planner.plan(1.5, None, box, 4.0) is Mode.FOLLOW  # wanted (no reference) but not due
    planner.done(Mode.FOLLOW, 1.5, lost_a_face=True)
    urgent_due = 1.2 + 4.0 * URGENT_SHARE  # a lost face is urgent: well before 1.2 + 4.0
    assert planner.plan(urgent_due - 0.05, None, box, 4.0) is Mode.FOLLOW
    assert planner.plan(urgent_due + 0.05, None, box, 4.0) is Mode.FULL
    planner.done(Mode.FULL, urgent_due + 0.05)
    assert not planner.urgent and planner.plan(urgent_due + 0.5, None, box, 4.0) is Mode.FOLLOW
    gating_off = Planner(refresh_s=2.0, motion_gating=False, last_full=0.0, full_wanted=False)
    assert gating_off.plan(0.4, None, box, 0.5) is Mode.FOLLOW  # wanted, not due
    assert gating_off.plan(0.6, None, box, 0.5) is Mode.FULL


def test_budget_thins_detections_when_busy_and_recovers_when_idle() -> None:
    budget = DetectBudget(floor_s=0.0, ceiling_s=1.0)
    now = 0.0
    for _ in range(200):  # 4 s of frames that each take 90 % of their 33 ms
        now += 0.033
        budget.record(now, 0.03)
    busy_interval = budget.interval_s
    assert 0.1 <= busy_interval <= 1.0
    for _ in range(20):  # a backlog pushes it to the ceiling
        now += 1.0
        budget.record(now, 0.0, behind=True)
    assert budget.interval_s == 1.0
    for _ in range(600):  # 20 s with time to spare
        now += 0.033
        budget.record(now, 0.003)
    assert budget.interval_s == 0.0
    with pytest.raises(ValueError):
        DetectBudget(floor_s=2.0, ceiling_s=1.0)


def test_a_rolled_actor_is_drawn_where_the_truth_says(yunet: YuNetDetector, cast: Cast) -> None:
    scene = Scene("one", 1, (Actor(*cast.person("ardern"), (Key(0, 200, 200, 100, 30.0),)),))
    ((image, truth),) = list(iter_frames(scene, yunet))
    found = yunet.detect(image)
    assert len(truth) == 1 and truth[0]["name"] == "ardern"
    assert max(box_iou(f.box, _box(truth[0])) for f in found) >= 0.5
