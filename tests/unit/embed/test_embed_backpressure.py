"""Drop-oldest in embed: a backlog is cut to the newest frame per camera, crops of dropped frames
move to their track's newest face, and with a consumer that does not read every frame is either
delivered or counted as a drop on its hop, per camera."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from bus.config import BusConfig, CameraConfig, EmbedConfig, MatchConfig, PipelineConfig
from bus.records import Embeddings, Face, FaceCrops, record_from_message
from bus.topology import endpoint
from bus.wire import decode
from detect.crops import crop_face
from embed.conflate import conflate, crop_count, keep_all, overloaded
from embed.model import EmbeddingModel
from embed.stage import EmbedStage

from .conftest import Detection


def _frame(
    camera: str, seq: int, people: list[tuple[int, Detection, bool]], ts: int | None = None
) -> FaceCrops:
    """One frame of tracked faces: (track id, who, with a crop?); each face from its own photo."""
    faces: list[Face] = []
    crops: list[np.ndarray] = []
    for track_id, det, with_crop in people:
        face = det.face
        face.track_id = track_id
        if with_crop:
            crop, origin = crop_face(det.image, face, 0.3)
            face.crop_index, face.crop_origin = len(crops), origin
            crops.append(crop)
        faces.append(face)
    stamp = ts if ts is not None else seq
    return FaceCrops(camera, seq, stamp, {}, (640, 480), faces, crops)


def test_conflate_keeps_the_newest_frame_and_carries_crops(detections: dict[str, Detection]) -> None:
    obama, macron, macron2, ardern = (detections[n] for n in ("obama_1", "macron_1", "macron_2", "ardern_1"))
    f1 = _frame("cam0", 1, [(64, obama, True), (128, macron, True)])
    f2 = _frame("cam0", 2, [(64, obama, False), (128, macron2, True)])
    other = _frame("cam1", 7, [(64, ardern, True)])
    f3 = _frame("cam0", 3, [(192, ardern, True), (64, obama, False), (128, macron, False)])
    work, dropped = conflate([f1, f2, other, f3])
    assert [w.record for w in work] == [other, f3] and dropped == [f1, f2]
    jobs = work[1].jobs
    assert [j.target.track_id for j in jobs] == [192, 64, 128]
    assert [j.target.crop_index for j in jobs] == [0, 1, 2]
    assert jobs[0].source is f3.faces[0] and jobs[0].crop is f3.crops[0]  # its own crop, same index
    assert jobs[1].source is f1.faces[0] and jobs[1].crop is f1.crops[0]  # only f1 had one
    assert jobs[2].source is f2.faces[1] and jobs[2].crop is f2.crops[0]  # the most recent wins
    assert len(work[0].jobs) == 1 and work[0].jobs[0].crop is other.crops[0]


def test_conflate_never_carries_untracked_or_vanished_faces(detections: dict[str, Detection]) -> None:
    obama = detections["obama_1"]
    old = _frame("cam0", 1, [(64, obama, True), (128, obama, True)])
    old.faces[1].track_id = None
    new = _frame("cam0", 2, [(999, obama, False)])
    work, dropped = conflate([old, new])
    assert dropped == [old] and work[0].jobs == [] and new.faces[0].crop_index is None
    assert crop_count([old, new]) == 2 and len(keep_all([old, new])) == 2


def test_when_embed_counts_as_behind(detections: dict[str, Detection]) -> None:
    who = detections["obama_1"]
    two = [_frame("cam0", s, [(64, who, True), (128, who, True)]) for s in range(2)]
    assert not overloaded(two, batch_size=4)  # two frames of a camera, four crops: one batch
    assert overloaded(two, batch_size=3)  # more crops than a batch
    three = [_frame("cam0", s, [(64, who, False)]) for s in range(3)]
    assert overloaded(three, batch_size=32)  # a third frame of one camera: a backlog
    spread = [_frame(f"cam{c}", 0, [(64, who, True)]) for c in range(8)]
    assert not overloaded(spread, batch_size=32)  # many cameras, one frame each
    assert not overloaded([], batch_size=1)


class Direct:
    """The stage's sockets opened (on_start) and its batches fed directly, in the test's thread:
    which frames arrive together is then exact. The consumer (match's side) reads nothing until
    the end, like a stalled match process."""

    def __init__(self, tmp_path: Path, sface_file: Path, hwm: int, batch_size: int) -> None:
        self.cfg = PipelineConfig(
            cameras=[CameraConfig(id="cam0", source="a.mp4"), CameraConfig(id="cam1", source="b.mp4")],
            bus=BusConfig(transport="ipc", ipc_dir=tmp_path / "ipc", hwm=hwm),
            embed=EmbedConfig(model=str(sface_file), batch_size=batch_size, batch_wait_ms=0),
            match=MatchConfig(gallery=tmp_path / "gallery"),
        )
        assert self.cfg.bus.ipc_dir is not None
        self.cfg.bus.ipc_dir.mkdir(parents=True, exist_ok=True)
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.RCVHWM, hwm)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.bind(endpoint(self.cfg.bus, "match_in").bind)
        self.stage = EmbedStage(self.cfg, 0)
        self.stage.on_start()
        deadline = time.monotonic() + 10
        while not self.stage.out.poll(10, zmq.POLLOUT):  # connected to the consumer
            assert time.monotonic() < deadline

    def feed(self, frames: list[FaceCrops]) -> None:
        # As the loop does: what arrived is decoded from the wire, then handled as one batch.
        batch = [record_from_message(decode(f.to_frames())) for f in frames]
        self.stage.process_batch(batch, self.stage.inputs[0])

    def received(self) -> list[Embeddings]:
        got = []
        while self.pull.poll(300):
            rec = record_from_message(decode(self.pull.recv_multipart()))
            assert isinstance(rec, Embeddings)
            got.append(rec)
        return got

    def drops(self, camera: str, hop: str) -> float:
        labels = {"stage": "embed", "worker": "0", "camera": camera, "hop": hop}
        return self.stage.metrics.registry.get_sample_value("facestream_drops_total", labels) or 0.0

    def close(self) -> None:
        self.stage.ctx.destroy(linger=0)
        self.ctx.destroy(linger=0)


def test_a_backlog_is_cut_to_the_newest_frame_per_camera(
    tmp_path: Path, sface_file: Path, model: EmbeddingModel, detections: dict[str, Detection]
) -> None:
    obama, macron, ardern = (detections[n] for n in ("obama_1", "macron_1", "ardern_1"))
    backlog = [_frame("cam0", 0, [(64, obama, True)], ts=100)]
    backlog += [
        _frame("cam0", s, [(64, obama, False), (128, macron, True)], ts=100 + s) for s in range(1, 12)
    ]
    backlog += [_frame("cam1", s, [(192, ardern, True)], ts=100 + s) for s in range(12)]
    run = Direct(tmp_path, sface_file, hwm=64, batch_size=4)
    try:
        run.feed(backlog[:2])  # 2 crops: they fit one batch, nothing is dropped
        first = run.received()
        run.feed(backlog[2:])  # 22 crops: only the newest frame of each camera is embedded
        second = run.received()
    finally:
        run.close()
    assert [(o.camera_id, o.seq) for o in first] == [("cam0", 0), ("cam0", 1)]
    # Every frame goes on to match, in arrival order (its boxes and track names are not lost) ...
    assert [(o.camera_id, o.seq) for o in second] == [("cam0", s) for s in range(2, 12)] + [
        ("cam1", s) for s in range(12)
    ]
    # ... but only the newest frame of each camera is embedded; the others' crops are shed.
    embedded = [(o.camera_id, o.seq) for o in second if o.vectors.shape[0]]
    assert embedded == [("cam0", 11), ("cam1", 11)]
    assert all(f.crop_index is None for o in second if not o.vectors.shape[0] for f in o.faces)
    assert run.drops("cam0", "detect->embed") == 9 and run.drops("cam1", "detect->embed") == 11
    assert run.stage.metrics.total("facestream_drops") == 20
    cam0 = next(o for o in second if (o.camera_id, o.seq) == ("cam0", 11))
    rows = {f.track_id: cam0.vectors[f.crop_index] for f in cam0.faces if f.crop_index is not None}
    assert set(rows) == {128} and cam0.vectors.shape == (1, 128)  # obama's track had no crop waiting
    expect = model.embed_faces(macron.image, [macron.face])[0]
    assert float(rows[128] @ expect) > 0.99


def test_a_crop_of_a_dropped_frame_reaches_its_track(
    tmp_path: Path, sface_file: Path, model: EmbeddingModel, detections: dict[str, Detection]
) -> None:
    obama, macron = detections["obama_1"], detections["macron_1"]
    frames = [
        _frame("cam0", 1, [(64, obama, True)], ts=1),  # obama's track appears: its only crop
        _frame("cam0", 2, [(64, obama, False), (128, macron, True)], ts=2),
        _frame("cam0", 3, [(64, obama, False), (128, macron, True)], ts=3),
    ]
    run = Direct(tmp_path, sface_file, hwm=64, batch_size=1)
    try:
        run.feed(frames)
        out = run.received()
    finally:
        run.close()
    assert [(o.seq, o.vectors.shape[0]) for o in out] == [(1, 0), (2, 0), (3, 2)]
    rows = {f.track_id: out[2].vectors[f.crop_index] for f in out[2].faces}
    assert float(rows[64] @ model.embed_faces(obama.image, [obama.face])[0]) > 0.99
    assert float(rows[128] @ model.embed_faces(macron.image, [macron.face])[0]) > 0.99


def test_a_consumer_that_does_not_read_costs_counted_drops_per_camera(
    tmp_path: Path, sface_file: Path, detections: dict[str, Detection]
) -> None:
    who = detections["obama_1"]
    per_camera = 1500  # small messages: the kernel's socket buffers hold hundreds beyond the HWM
    run = Direct(tmp_path, sface_file, hwm=2, batch_size=4)
    try:
        for s in range(per_camera):
            for camera in ("cam0", "cam1"):
                run.feed([_frame(camera, s, [(64, who, False)], ts=s)])
        out = run.received()
    finally:
        run.close()
    for camera in ("cam0", "cam1"):
        delivered = sum(1 for o in out if o.camera_id == camera)
        full = run.drops(camera, "embed->match")
        assert full > 0 and delivered > 0, (camera, delivered, full)
        assert delivered + full == per_camera
        assert run.drops(camera, "detect->embed") == 0
