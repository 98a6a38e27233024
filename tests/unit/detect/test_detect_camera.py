"""One camera's detection in a worker, frame by frame over rendered scenes with known truth:
what it spends (full detections, following, nothing) and what that costs in box accuracy."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from bus.config import DetectConfig
from bus.records import Frame
from deploy.assets import PHOTOS
from deploy.scenes import (
    Cast,
    Scene,
    crowd_of_six,
    crowd_scene,
    empty_scene,
    iter_frames,
    still_person,
    walking_person,
)
from deploy.truth import boxes_agree
from detect.camera import CameraDetect
from detect.planner import Mode
from detect.yunet import YuNetDetector

FPS = 15.0


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector()


_RENDERED: dict[str, list[tuple[np.ndarray, list[dict], list]]] = {}


def _frames(scene: Scene, yunet: YuNetDetector) -> list[tuple[np.ndarray, list[dict], list]]:
    """(image, truth, boxes of a detection on that frame) per frame, rendered once per scene."""
    key = f"{scene.name}-{scene.frames}"
    if key not in _RENDERED:
        _RENDERED[key] = [
            (image, truth, [f.box for f in yunet.detect(image)]) for image, truth in iter_frames(scene, yunet)
        ]
    return _RENDERED[key]


def _run(
    scene: Scene, yunet: YuNetDetector, interval_s: float = 0.0, **cfg: object
) -> tuple[Counter[Mode], float, list]:
    """(modes, share of frames whose boxes agree with a detection on that frame, outputs)."""
    camera = CameraDetect("cam", DetectConfig(upright=False, **cfg), yunet)  # type: ignore[arg-type]
    modes: Counter[Mode] = Counter()
    agree = 0
    outs = []
    for seq, (image, _truth, every_frame) in enumerate(_frames(scene, yunet)):
        out = camera.handle(Frame("cam", seq, int(seq / FPS * 1e9), image=image), interval_s)
        modes[out.mode] += 1
        agree += boxes_agree([f.box for f in out.faces.faces], every_frame)
        outs.append(out)
    return modes, agree / scene.frames, outs


def test_a_still_empty_room_costs_one_detection_per_refresh(yunet: YuNetDetector) -> None:
    modes, agree, outs = _run(empty_scene(Cast(PHOTOS), frames=60), yunet, refresh_s=2.0)
    assert modes[Mode.FULL] == 2  # the first frame and one refresh 2 s later (60 frames = 4 s)
    assert modes[Mode.STILL] == 58 and agree == 1.0
    assert all(o.faces.faces == [] for o in outs)


def test_a_still_person_keeps_box_and_track_without_detections(yunet: YuNetDetector) -> None:
    modes, agree, outs = _run(still_person(Cast(PHOTOS), frames=60), yunet, refresh_s=2.0)
    assert modes[Mode.FULL] <= 3 and modes[Mode.STILL] >= 55
    assert agree >= 0.95
    tracks = {f.track_id for o in outs for f in o.faces.faces}
    assert len(tracks) == 1  # one face, one track, all along
    assert sum(len(o.faces.crops) for o in outs) <= 3  # embedded when new, then on refreshes


@pytest.mark.parametrize("make", [walking_person, crowd_of_six])
def test_moving_faces_are_followed_between_detections_and_stay_on_the_faces(
    yunet: YuNetDetector, make: object
) -> None:
    scene = make(Cast(PHOTOS), frames=60)  # type: ignore[operator]
    modes, agree, _ = _run(scene, yunet)
    assert modes[Mode.FOLLOW] > modes[Mode.FULL]  # most frames cost a template match per face
    assert agree >= 0.95, (scene.name, agree, modes)


def test_a_person_replaced_in_place_never_lends_the_newcomer_its_track(yunet: YuNetDetector) -> None:
    scene = crowd_scene(Cast(PHOTOS), frames=90)  # actor 3 -> 4 at frame 30, 4 -> 5 at 60, same place
    _, _, outs = _run(scene, yunet)
    owner: dict[int, set[int]] = {}  # track id -> the actors its boxes were on
    for out, (_, truth, _) in zip(outs, _frames(scene, yunet), strict=True):
        for face in out.faces.faces:
            best = max(truth, key=lambda t: _iou(face.box, t["box"]), default=None)
            if best is not None and _iou(face.box, best["box"]) >= 0.3:
                owner.setdefault(face.track_id or -1, set()).add(best["actor"])
    assert all(len(actors) == 1 for actors in owner.values()), owner


def test_overload_thins_detections_but_every_frame_keeps_its_boxes(yunet: YuNetDetector) -> None:
    modes, agree, outs = _run(crowd_of_six(Cast(PHOTOS), frames=60), yunet, interval_s=1.0, motion=False)
    assert modes[Mode.FULL] == 4  # one a second (and the first frame): 60 frames at 15 fps
    assert all(len(o.faces.faces) == 6 for o in outs[1:])  # six faces in every frame
    assert agree >= 0.9


def _iou(a: tuple[float, float, float, float], b: list[float]) -> float:
    from bus.geometry import box_iou

    return box_iou(a, tuple(b))  # type: ignore[arg-type]


def test_quality_and_crops_only_for_detected_faces(yunet: YuNetDetector) -> None:
    _, _, outs = _run(walking_person(Cast(PHOTOS), frames=30), yunet)
    for out in outs:
        for face in out.faces.faces:
            assert (face.quality is None) == face.tracked
            assert face.crop_index is None or not face.tracked
    assert np.mean([len(o.faces.faces) for o in outs]) == 1.0


def test_a_scene_cut_shows_the_new_face_in_its_first_frame(yunet: YuNetDetector) -> None:
    """Following loses the old face at a cut; the detection it asks for runs on that very frame
    (when the budget allows one), so the cut frame shows the new face instead of none."""
    from faces.images import letterbox, read_image

    before = letterbox(read_image(PHOTOS / "macron_2.jpg"), (640, 480))
    after = letterbox(read_image(PHOTOS / "ardern_2.jpg"), (640, 480))
    camera = CameraDetect("cam", DetectConfig(upright=False), yunet)
    outs = [
        camera.handle(Frame("cam", seq, int(seq / FPS * 1e9), image=image), 0.5)
        for seq, image in enumerate([before] * 4 + [after])
    ]
    assert [o.mode for o in outs[:4]] == [Mode.FULL, Mode.STILL, Mode.STILL, Mode.STILL]
    cut = outs[4]
    assert cut.mode is Mode.FULL and len(cut.faces.faces) == 1 and not cut.faces.faces[0].tracked
    assert cut.faces.faces[0].track_id != outs[0].faces.faces[0].track_id  # a new track, a new name
