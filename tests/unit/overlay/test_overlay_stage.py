"""OverlayStage over real ipc sockets: real frames of the carphone clip, MatchResults whose boxes
come from OpenCV's Haar face detector on those frames, some results missing (stale frames)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from bus.errors import FacestreamError
from bus.records import EndOfStream, Face
from overlay.stage import OverlayStage
from tests.stage_thread import StageThread
from tests.unit.overlay.stage_io import Upstream, overlay_config


@pytest.fixture(scope="module")
def clip_frames(clip: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    frames: list[np.ndarray] = []
    while True:
        ok, f = cap.read()
        if not ok:
            return frames
        frames.append(f)


@pytest.fixture(scope="module")
def boxes(clip_frames: list[np.ndarray]) -> list[list[tuple[float, float, float, float]]]:
    """Real face boxes per frame from OpenCV's bundled Haar cascade."""
    model = Path(cv2.__file__).parent / "data" / "haarcascade_frontalface_default.xml"
    cascade = cv2.CascadeClassifier(str(model))
    assert not cascade.empty()
    out = []
    for f in clip_frames:
        found = cascade.detectMultiScale(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), 1.1, 3, minSize=(20, 20))
        out.append([(float(x), float(y), float(w), float(h)) for x, y, w, h in found])
    return out


def _faces(seq: int, boxes: list[tuple[float, float, float, float]]) -> list[Face]:
    name, sim = ("carphone", 0.81) if seq < 80 else ("Unknown", 0.22)
    return [Face(box=b, score=0.9, name=name, similarity=sim, track_id=7) for b in boxes]


def _mp4_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while True:
        ok, f = cap.read()
        if not ok:
            return frames
        frames.append(f)


def _snapshot(port: int) -> np.ndarray:
    deadline = time.monotonic() + 5
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/snapshot/cam0.jpg", timeout=5) as resp:
                image = cv2.imdecode(np.frombuffer(resp.read(), np.uint8), cv2.IMREAD_COLOR)
                assert image is not None
                return image
        except urllib.error.HTTPError as err:
            assert err.code == 503 and time.monotonic() < deadline
            time.sleep(0.05)


def test_joins_draws_writes_and_exits_by_itself(
    tmp_path: Path, clip_frames: list[np.ndarray], boxes: list[list[tuple[float, float, float, float]]]
) -> None:
    out, log = tmp_path / "out.mp4", tmp_path / "logs" / "results.jsonl"
    config = overlay_config(
        tmp_path, ["cam0"], output=str(out), results_log=str(log), mjpeg_port=0, hold_s=1.0
    )
    stage = OverlayStage(config)
    upstream = Upstream(config)
    runner = StageThread(stage).start()
    missing = {seq for seq in range(120) if seq % 5 == 4}  # "dropped downstream": no result
    try:
        upstream.wait_subscribed()
        assert stage.mjpeg is not None
        for seq, image in enumerate(clip_frames):
            ts = time.time_ns()  # capture time, carried by the frame and its result
            early = seq % 7 == 0  # a result may overtake its frame
            if early and seq not in missing:
                upstream.result("cam0", seq, _faces(seq, boxes[seq]), ts)
            upstream.frame(0, "cam0", seq, image, ts)
            if not early and seq not in missing:
                upstream.result("cam0", seq, _faces(seq, boxes[seq]), ts)
            if seq == 30:
                html = urllib.request.urlopen(stage.mjpeg.url, timeout=5).read().decode()
                assert '<img src="/stream/cam0"' in html
                assert _snapshot(stage.mjpeg.port).shape == (144, 176, 3)
            time.sleep(0.002)
        upstream.frames[0].send_multipart(EndOfStream("cam0", 119, time.time_ns()).to_frames())
        runner.join(20)  # no request_stop: the stage ends on its own after the EndOfStream
    finally:
        upstream.close()

    written = _mp4_frames(out)
    assert len(written) == 120
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["seq"] for e in lines] == list(range(120))
    assert {e["seq"] for e in lines if not e["result"]} == missing
    for e in lines:
        assert e["camera_id"] == "cam0" and isinstance(e["ts_ns"], int)
        assert (e["latency_ms"] is None) == (not e["result"])
        if e["result"]:
            assert 0 <= e["latency_ms"] < 5000
            assert len(e["faces"]) == len(boxes[e["seq"]])
        else:  # never another frame's boxes or names
            assert e["faces"] == []
    named = [f["name"] for e in lines for f in e["faces"]]
    assert "carphone" in named and "Unknown" in named
    assert all(
        set(f) == {"box", "name", "similarity", "track_id", "tracked"} for e in lines for f in e["faces"]
    )

    # A drawn frame differs from the clip inside its face box, much less elsewhere.
    seq = next(s for s in range(120) if s not in missing and boxes[s])
    x, y, w, h = (int(v) for v in boxes[seq][0])
    diff = np.abs(written[seq].astype(int) - clip_frames[seq].astype(int)).sum(axis=2)
    edge = np.concatenate([diff[y, x : x + w], diff[y + h, x : x + w], diff[y : y + h, x + w]])
    assert edge.mean() > 3 * diff[y + h + 10 :, : max(x - 10, 1)].mean()

    summary = json.loads((tmp_path / "logs" / "results.summary.json").read_text())
    fresh = [s for s in range(120) if s not in missing]
    assert summary["frames"] == 120
    assert summary["frames_with_result"] == len(fresh) == 96
    assert summary["faces"] == sum(len(boxes[s]) for s in fresh)
    assert summary["unknown_faces"] == sum(len(boxes[s]) for s in fresh if s >= 80)
    assert summary["identities"] == ["carphone"]
    assert summary["wall_s"] > 0 and summary["fps"] > 0
    cam = summary["per_camera"]["cam0"]
    assert cam["frames"] == 120 and cam["frames_without_result"] == 24 and cam["end_reason"] == "end of file"
    assert cam["output"] == str(out)
    assert stage.metrics.total("facestream_messages_out") == 120


def test_only_a_cameras_own_link_ends_it(tmp_path: Path, clip_frames: list[np.ndarray]) -> None:
    """An end-of-stream on the results path (anyone can push into match) or on another camera's
    link is ignored; each camera ends on its own capture's word, and then the overlay finishes."""
    out = tmp_path / "out.mp4"
    config = overlay_config(tmp_path, ["cam0", "cam1"], output=str(out), hold_s=0.2, idle_exit_s=0.3)
    stage = OverlayStage(config)
    upstream = Upstream(config)
    runner = StageThread(stage).start()
    try:
        upstream.wait_subscribed()
        for seq in range(10):
            for i, cam in enumerate(["cam0", "cam1"]):
                upstream.frame(i, cam, seq, clip_frames[seq + 50 * i])
                upstream.result(cam, seq, [])
        for cam in ["cam0", "cam1"]:  # forged: the results path
            upstream.results.send_multipart(EndOfStream(cam, 9, time.time_ns()).to_frames())
        upstream.frames[1].send_multipart(EndOfStream("cam0", 9, time.time_ns()).to_frames())  # wrong link
        # Frames after the forged ends are still shown: had an end counted, they would come late.
        for i, cam in enumerate(["cam0", "cam1"]):
            upstream.frame(i, cam, 10, clip_frames[10 + 50 * i])
            upstream.result(cam, 10, [])
        deadline = time.monotonic() + 20
        while any(v.tally.written < 11 for v in stage.cameras.values()):
            assert runner.thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        assert stage.metrics.total("facestream_malformed") == 1  # the end on another camera's link
        assert not any(v.ended for v in stage.cameras.values())
        for i, cam in enumerate(["cam0", "cam1"]):
            upstream.frames[i].send_multipart(EndOfStream(cam, 10, time.time_ns()).to_frames())
        runner.join(10)
    finally:
        upstream.close()
    for cam in ["cam0", "cam1"]:
        assert len(_mp4_frames(tmp_path / f"out-{cam}.mp4")) == 11
    summary = json.loads((tmp_path / "out.summary.json").read_text())
    assert summary["frames"] == 22 and summary["frames_with_result"] == 22
    assert set(summary["per_camera"]) == {"cam0", "cam1"}
    assert summary["per_camera"]["cam1"]["frames"] == 11


def test_frames_whose_result_never_comes_are_written_bare(
    tmp_path: Path, clip_frames: list[np.ndarray]
) -> None:
    out = tmp_path / "out.mp4"
    config = overlay_config(
        tmp_path, ["cam0"], output=str(out), results_log=str(tmp_path / "r.jsonl"), hold_s=1.0
    )
    stage = OverlayStage(config)
    upstream = Upstream(config)
    runner = StageThread(stage).start()
    try:
        upstream.wait_subscribed()
        for seq in range(5):
            upstream.frame(0, "cam0", seq, clip_frames[seq])
        upstream.result("cam0", 1, [Face(box=(60, 30, 60, 60), score=0.9, name="x", similarity=0.9)])
        upstream.frames[0].send_multipart(EndOfStream("cam0", 4, time.time_ns()).to_frames())
        runner.join(20)
    finally:
        upstream.close()
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(e["seq"], e["result"], len(e["faces"])) for e in lines] == [
        (0, False, 0),
        (1, True, 1),
        (2, False, 0),
        (3, False, 0),
        (4, False, 0),
    ]


def test_stopped_midway_still_leaves_a_playable_video(tmp_path: Path, clip_frames: list[np.ndarray]) -> None:
    out, log = tmp_path / "out.mp4", tmp_path / "r.jsonl"
    config = overlay_config(tmp_path, ["cam0"], output=str(out), results_log=str(log))
    stage = OverlayStage(config)
    upstream = Upstream(config)
    runner = StageThread(stage).start()
    try:
        upstream.wait_subscribed()
        for seq in range(20):
            upstream.frame(0, "cam0", seq, clip_frames[seq])
            upstream.result("cam0", seq, [])
        deadline = time.monotonic() + 10
        while (not log.exists() or len(log.read_text().splitlines()) < 20) and time.monotonic() < deadline:
            time.sleep(0.02)
        stage.request_stop()
        runner.join(10)
    finally:
        upstream.close()
    assert len(_mp4_frames(out)) == 20
    assert json.loads((tmp_path / "r.summary.json").read_text())["frames"] == 20


def test_unwritable_output_fails_at_start(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    config = overlay_config(tmp_path, ["cam0"], output=str(tmp_path / "file" / "out.mp4"))
    with pytest.raises(FacestreamError, match="is not a folder"):
        OverlayStage(config).run()
