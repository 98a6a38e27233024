"""DetectStage over real ZeroMQ ipc sockets: frames in, FaceCrops out, drops and faults counted."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from bus.errors import FacestreamError
from bus.records import EndOfStream, FaceCrops, Frame
from detect.stage import DetectStage
from tests.unit.detect.stage_io import CAM, counter_value, detect_config, running


def _frame(seq: int, image: np.ndarray, ts_ns: int | None = None) -> Frame:
    ts = time.time_ns() if ts_ns is None else ts_ns
    return Frame(camera_id=CAM, seq=seq, ts_ns=ts, stamps={"capture": ts}, image=image)


def test_frames_in_face_crops_out(tmp_path: Path, carphone: list[np.ndarray]) -> None:
    cfg = detect_config(tmp_path, track=False)  # untracked: every face of every frame is cropped
    seqs = list(range(0, 120, 12))
    with running(cfg, tmp_path) as (stage, io):
        for seq in seqs:
            frame = _frame(seq, carphone[seq])
            io.send(frame, jpeg=90 if seq == 60 else None)  # one JPEG frame on the wire too
            out = io.recv()
            assert isinstance(out, FaceCrops)
            assert (out.camera_id, out.seq, out.ts_ns) == (CAM, seq, frame.ts_ns)
            assert out.frame_size == (176, 144)
            assert out.stamps["capture"] == frame.stamps["capture"] <= out.stamps["detect"]
            assert len(out.faces) == 1 and len(out.crops) == 1, seq
            face, crop = out.faces[0], out.crops[0]
            assert face.crop_index == 0 and face.score >= 0.7
            x0, y0 = face.crop_origin
            h, w = crop.shape[:2]
            assert face.landmarks is not None
            local = face.landmarks - np.array([x0, y0], np.float32)
            assert (local >= 0).all() and (local[:, 0] < w).all() and (local[:, 1] < h).all()
            if seq != 60:  # raw frames: the crop is exactly the frame's pixels
                assert np.array_equal(crop, carphone[seq][y0 : y0 + h, x0 : x0 + w])
            assert io.last_path == "embed"
        io.send(_frame(200, np.zeros((144, 176, 3), np.uint8)))
        empty = io.recv()
        assert isinstance(empty, FaceCrops) and empty.seq == 200
        assert empty.faces == [] and empty.crops == [] and io.last_path == "match"
        io.send(EndOfStream(camera_id=CAM, seq=200, ts_ns=time.time_ns()))
        eos = io.recv()
        assert isinstance(eos, EndOfStream) and eos.seq == 200 and io.last_path == "embed"
    n = len(seqs) + 2
    assert counter_value(stage, "facestream_messages_in", camera=CAM) == n
    assert counter_value(stage, "facestream_messages_out", camera=CAM) == n
    assert stage.metrics.total("facestream_drops") == 0
    assert (
        stage.metrics.registry.get_sample_value(
            "facestream_stage_seconds_count", {"stage": "detect", "worker": "0", "camera": CAM}
        )
        == len(seqs) + 1
    )


FRAME_NS = 40_000_000


def test_drop_oldest_under_a_burst(tmp_path: Path, carphone: list[np.ndarray]) -> None:
    cfg = detect_config(tmp_path)
    # 704x576 frames (scaled down to 640 inside YuNet) take several ms each; sending takes far less.
    big = [cv2.resize(f, (704, 576)) for f in carphone[:60]]
    with running(cfg, tmp_path) as (stage, io):
        # Stamped like a 25 fps camera whose frames piled up (the detection budget plans by
        # capture time: a face that following lost is looked for after a share of its interval).
        start = time.time_ns() - 60 * FRAME_NS
        for seq, image in enumerate(big):
            io.send(_frame(seq, image, start + seq * FRAME_NS))
        io.send(EndOfStream(camera_id=CAM, seq=59, ts_ns=time.time_ns()))
        outs: list[FaceCrops] = []
        ended = False
        # Frames and the end travel on two paths (crops to embed, the rest to match): read both
        # until the end came and every frame is either out or counted as dropped.
        while (
            not ended
            or len(outs) + counter_value(stage, "facestream_drops", camera=CAM, hop="capture->detect") < 60
        ):
            rec = io.recv()
            if isinstance(rec, EndOfStream):
                ended = True
                continue
            assert isinstance(rec, FaceCrops)
            outs.append(rec)
    outs.sort(key=lambda o: o.seq)
    seqs = [o.seq for o in outs]
    dropped = counter_value(stage, "facestream_drops", camera=CAM, hop="capture->detect")
    assert 0 < len(outs) < 60, seqs
    assert seqs == sorted(set(seqs)), seqs
    assert seqs[-1] == 59  # the newest frame is never the one dropped
    assert dropped > 0 and stage.metrics.total("facestream_drops") == dropped
    assert len(outs) + dropped == 60  # every frame is either detected or counted
    faces = [(o.seq, [(round(f.score, 2), f.tracked) for f in o.faces]) for o in outs]
    assert sum(len(o.faces) == 1 for o in outs) >= 0.9 * len(outs), str(faces)  # detected or followed


def test_garbage_is_counted_and_the_stage_goes_on(tmp_path: Path, carphone: list[np.ndarray]) -> None:
    cfg = detect_config(tmp_path)
    good = _frame(7, carphone[7])
    frames = [bytes(f) for f in good.to_frames()]
    wrong_size = [frames[0], frames[1], frames[2][:-10]]
    old_version = [frames[0], frames[1].replace(b'"schema_version":1', b'"schema_version":99'), frames[2]]
    stray = FaceCrops(camera_id=CAM, seq=1, ts_ns=1, frame_size=(2, 2))
    with running(cfg, tmp_path) as (stage, io):
        for junk in ([b"\x00garbage"], [b"cam0", b"{not json"], wrong_size, old_version):
            io.push.send_multipart(junk)
        io.send(stray)
        io.send(good)
        out = io.recv()
        assert isinstance(out, FaceCrops) and out.seq == 7 and len(out.faces) == 1
        with pytest.raises(AssertionError):
            io.recv(timeout_s=0.3)  # nothing else came out
    bad = {
        kind: stage.metrics.registry.get_sample_value(
            "facestream_malformed_total", {"stage": "detect", "worker": "0", "kind": kind}
        )
        for kind in ("malformed_frames", "malformed_header", "bad_payload", "bad_version", "unexpected_kind")
    }
    assert bad == dict.fromkeys(bad, 1.0)
    assert stage.metrics.total("facestream_malformed") == 5


def test_detector_is_built_before_sockets(tmp_path: Path) -> None:
    cfg = detect_config(tmp_path, backend="mtcnn", mtcnn_dir=str(tmp_path / "no-such-folder"))
    with pytest.raises(FacestreamError, match="mtcnn_dir"):
        DetectStage(cfg)  # fails when the stage is made, before any socket exists


class _Downstream:
    """Detect's push socket as the test wants it: records how long each end may wait for room."""

    def __init__(self) -> None:
        self.room = False
        self.waits: list[int] = []
        self.sent = 0

    def poll(self, timeout: int, flags: int) -> int:
        self.waits.append(timeout)
        return flags if self.room else 0

    def send_multipart(self, parts: object, flags: int = 0, copy: bool = True) -> None:
        self.sent += 1


def test_ends_do_not_wait_one_by_one_once_no_embed_worker_takes_them(tmp_path: Path) -> None:
    cfg = detect_config(tmp_path)
    stage = DetectStage(cfg, ready_file=tmp_path / "ready")
    push = _Downstream()
    stage.push = push  # type: ignore[assignment]
    for seq in range(3):  # embed already gone (a stop): the first end waits, the others do not
        stage.forward_eos(EndOfStream(CAM, seq, time.time_ns(), reason="stop"))
    assert push.waits == [1000, 0, 0] and push.sent == 0
    assert counter_value(stage, "facestream_drops", camera=CAM, hop="detect->embed") == 3
    push.room = True  # a worker is back: ends go out, and wait again when it is not
    stage.forward_eos(EndOfStream(CAM, 3, time.time_ns(), reason="stop"))
    push.room = False
    stage.forward_eos(EndOfStream(CAM, 4, time.time_ns(), reason="stop"))
    assert push.waits[3:] == [0, 1000] and push.sent == 1
