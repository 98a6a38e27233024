"""DetectStage with tracking on, over real ipc sockets: crops only for new/better/overdue faces."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from bus.config import BusConfig, CameraConfig, DetectConfig, MatchConfig, PipelineConfig
from bus.records import EndOfStream, FaceCrops, Frame
from tests.unit.detect.stage_io import running

CAM = "cam0"
FRAME_NS = 33_366_700  # 29.97 fps


def _config(tmp_path: Path, **detect: object) -> PipelineConfig:
    return PipelineConfig(
        cameras=[CameraConfig(id=CAM, source="carphone.mp4")],
        bus=BusConfig(transport="ipc", ipc_dir=tmp_path / "ipc"),
        detect=DetectConfig(track=True, **detect),  # type: ignore[arg-type]
        match=MatchConfig(gallery=tmp_path / "gallery"),
    )


def test_a_tracked_face_is_embedded_rarely(tmp_path: Path, carphone: list[np.ndarray]) -> None:
    cfg = _config(tmp_path, reembed_interval_s=1.0)
    base = time.time_ns()
    outs: list[FaceCrops] = []
    with running(cfg, tmp_path) as (stage, io):
        for seq in range(90):  # 3 s of video, one frame at a time (no frame is dropped)
            image = cv2.resize(carphone[seq], (640, 480))
            io.send(Frame(CAM, seq, base + seq * FRAME_NS, stamps={}, image=image))
            out = io.recv()
            assert isinstance(out, FaceCrops) and out.seq == seq
            outs.append(out)
        io.send(EndOfStream(CAM, 89, time.time_ns()))
        assert isinstance(io.recv(), EndOfStream)
        assert stage.cameras == {}  # the camera ended: its tracks are gone
    assert all(len(o.faces) == 1 for o in outs)
    faces = [o.faces[0] for o in outs]
    ids = [f.track_id for f in faces]
    main = max(set(ids), key=ids.count)
    assert ids.count(main) >= 80 and all(i is not None for i in ids)
    embedded = [o.seq for o in outs if o.crops]
    assert embedded[0] == 0 and 3 <= len(embedded) <= 15, embedded
    for o in outs:
        face = o.faces[0]
        if not face.tracked:  # detected in this frame (tracked ones were followed in between)
            assert face.quality is not None and 0.0 < face.quality <= 1.0
        if o.crops:
            assert face.crop_index == 0 and len(o.crops) == 1
        else:
            assert face.crop_index is None
    # The interval alone forces one embedding per second of the main track at least.
    main_embeds = [o.seq for o in outs if o.crops and o.faces[0].track_id == main]
    gaps = np.diff(main_embeds)
    assert len(main_embeds) >= 3 and gaps.max() <= 31, main_embeds


def test_tracking_off_embeds_every_face(tmp_path: Path, carphone: list[np.ndarray]) -> None:
    cfg = _config(tmp_path).model_copy(update={"detect": DetectConfig(track=False)})
    with running(cfg, tmp_path) as (_stage, io):
        for seq in range(5):
            io.send(Frame(CAM, seq, time.time_ns(), stamps={}, image=carphone[seq]))
            out = io.recv()
            assert isinstance(out, FaceCrops) and len(out.crops) == 1
            assert out.faces[0].track_id is None and out.faces[0].crop_index == 0
