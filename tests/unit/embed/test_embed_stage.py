"""EmbedStage end to end over real ZeroMQ ipc sockets, with the real SFace model."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq

from bus.config import BusConfig, CameraConfig, EmbedConfig, MatchConfig, PipelineConfig
from bus.errors import FacestreamError
from bus.records import Embeddings, EndOfStream, Face, FaceCrops, record_from_message
from bus.topology import endpoint
from bus.wire import decode
from embed.model import EmbeddingModel
from embed.stage import EmbedStage
from tests.stage_thread import StageThread, wait_for

from .conftest import Detection

TIMEOUT_MS = 30_000


def _config(tmp_path: Path, model: str, batch_wait_ms: float = 2.0) -> PipelineConfig:
    return PipelineConfig(
        cameras=[CameraConfig(id="cam0", source="unused.mp4"), CameraConfig(id="cam1", source="x.mp4")],
        bus=BusConfig(transport="ipc", ipc_dir=tmp_path / "ipc"),
        embed=EmbedConfig(model=model, batch_size=4, batch_wait_ms=batch_wait_ms),
        match=MatchConfig(gallery=tmp_path / "gallery"),
    )


class Harness:
    """The stage in a thread; the test plays detect (PUSH to embed_in) and match (PULL at match_in)."""

    def __init__(self, config: PipelineConfig, tmp_path: Path) -> None:
        assert config.bus.ipc_dir is not None
        config.bus.ipc_dir.mkdir(parents=True, exist_ok=True)
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.bind(endpoint(config.bus, "match_in").bind)
        self.stage = EmbedStage(config, 0, ready_file=tmp_path / "ready")
        self.runner = StageThread(self.stage).start()
        self.runner.wait_ready(TIMEOUT_MS / 1000)
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 0)
        self.push.connect(endpoint(config.bus, "embed_in", 0).connect)

    def send(self, frames: list[Any]) -> None:
        self.push.send_multipart(frames, copy=False)

    def receive(self) -> Any:
        assert self.pull.poll(TIMEOUT_MS), "nothing came out of the embed stage"
        return record_from_message(decode(self.pull.recv_multipart()))

    def close(self) -> None:
        try:
            self.runner.stop(30)
        finally:
            self.ctx.destroy(linger=0)


@pytest.fixture
def harness(tmp_path: Path, sface_file: Path) -> Iterator[Harness]:
    h = Harness(_config(tmp_path, str(sface_file)), tmp_path)
    yield h
    h.close()


def _two_face_frame(detections: dict[str, Detection]) -> tuple[np.ndarray, list[Face]]:
    """A real frame with two people side by side; faces carry frame coordinates."""
    left, right = detections["macron_1"], detections["obama_1"]
    height = max(left.image.shape[0], right.image.shape[0])
    pad = [np.zeros((height - d.image.shape[0], d.image.shape[1], 3), np.uint8) for d in (left, right)]
    frame = np.hstack([np.vstack([left.image, pad[0]]), np.vstack([right.image, pad[1]])])
    dx = left.image.shape[1]
    shifted = right.face
    faces = [
        left.face,
        Face(
            box=(shifted.box[0] + dx, *shifted.box[1:]),
            score=shifted.score,
            landmarks=shifted.landmarks + np.array([dx, 0], np.float32),  # type: ignore[operator]
        ),
    ]
    return frame, faces


def _crops(camera: str, seq: int, frame: np.ndarray, faces: list[Face], order: list[int]) -> FaceCrops:
    """Crop each face with a margin, as detect does; crop_index follows `order`."""
    out_faces, crops = [], []
    for crop_index, i in enumerate(order):
        f = faces[i]
        x, y, w, h = (int(v) for v in f.box)
        x0, y0 = max(0, x - w // 3), max(0, y - h // 3)
        x1, y1 = min(frame.shape[1], x + w + w // 3), min(frame.shape[0], y + h + h // 3)
        crops.append(np.ascontiguousarray(frame[y0:y1, x0:x1]))
        out_faces.append(
            Face(box=f.box, score=f.score, landmarks=f.landmarks, crop_index=crop_index, crop_origin=(x0, y0))
        )
    out_faces.append(Face(box=(1.0, 1.0, 8.0, 8.0), score=0.9, track_id=7))  # tracked: no new crop
    ts = time.time_ns()
    return FaceCrops(
        camera, seq, ts, {"detect": ts}, (frame.shape[1], frame.shape[0]), out_faces[::-1], crops
    )


def test_stage_embeds_crops_like_the_model(
    harness: Harness, model: EmbeddingModel, detections: dict[str, Detection]
) -> None:
    frame, faces = _two_face_frame(detections)
    sent = _crops("cam0", 5, frame, faces, order=[1, 0])  # crop 0 is obama, crop 1 is macron
    harness.send(sent.to_frames())
    got = harness.receive()
    assert isinstance(got, Embeddings)
    assert (got.camera_id, got.seq, got.ts_ns, got.frame_size) == ("cam0", 5, sent.ts_ns, sent.frame_size)
    assert got.model_id == "sface-2021dec" and set(got.stamps) == {"detect", "embed"}
    assert [f.crop_index for f in got.faces] == [f.crop_index for f in sent.faces]
    # What the stage saw (the wire rounds landmarks to 0.01 px), embedded directly with the model:
    seen = record_from_message(decode(sent.to_frames()))
    assert isinstance(seen, FaceCrops)
    by_index = {f.crop_index: f for f in seen.faces}
    aligned = [model.align(c, by_index[i], origin=by_index[i].crop_origin) for i, c in enumerate(seen.crops)]
    assert got.vectors.shape == (2, 128)
    np.testing.assert_allclose(got.vectors, model.embed(aligned), atol=1e-6)
    # ...and the same faces embedded from the whole frame with unrounded landmarks agree closely.
    whole = model.embed_faces(frame, [faces[1], faces[0]])  # rows in crop_index order
    assert float(np.min(np.sum(whole * got.vectors, axis=1))) > 0.999
    assert (
        float(
            got.vectors[0] @ model.embed_faces(detections["obama_2"].image, [detections["obama_2"].face])[0]
        )
        > 0.363
    )


def test_empty_frames_eos_and_garbage(harness: Harness, detections: dict[str, Detection]) -> None:
    empty = FaceCrops("cam1", 0, time.time_ns(), {}, (64, 48), [], [])
    harness.send(empty.to_frames())
    got = harness.receive()
    assert isinstance(got, Embeddings) and got.vectors.shape == (0, 128) and got.faces == []

    harness.send([b"\x00garbage"])
    harness.send([b"cam1", b"{not json", b"x"])
    eos = EndOfStream("cam1", 0, time.time_ns(), reason="end of file")
    harness.send(eos.to_frames())
    got = harness.receive()
    assert isinstance(got, EndOfStream) and (got.camera_id, got.seq, got.reason) == ("cam1", 0, "end of file")
    assert harness.stage.metrics.total("facestream_malformed") == 2

    # Still working after the malformed messages.
    frame, faces = _two_face_frame(detections)
    harness.send(_crops("cam0", 9, frame, faces, order=[0]).to_frames())
    got = harness.receive()
    assert isinstance(got, Embeddings) and got.seq == 9 and got.vectors.shape == (1, 128)
    metrics = harness.stage.metrics
    # the stage counts a message just after sending it
    wait_for(
        lambda: metrics.total("facestream_messages_out") >= 3, 10, "the third message was not counted out"
    )
    assert metrics.total("facestream_messages_in") == 3 and metrics.total("facestream_messages_out") == 3
    assert metrics.total("facestream_drops") == 0


def test_frames_from_several_cameras_share_one_model_call(
    tmp_path: Path, sface_file: Path, detections: dict[str, Detection], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = EmbeddingModel.embed

    def counting(self: EmbeddingModel, aligned: Any, batch_size: int = 32) -> np.ndarray:
        calls.append(len(aligned))
        return original(self, aligned, batch_size)

    monkeypatch.setattr(EmbeddingModel, "embed", counting)
    h = Harness(_config(tmp_path, str(sface_file), batch_wait_ms=500), tmp_path)
    try:
        frame, faces = _two_face_frame(detections)
        for cam, seq in (("cam0", 1), ("cam1", 1), ("cam0", 2)):
            h.send(_crops(cam, seq, frame, faces, order=[0]).to_frames())
        got = [h.receive() for _ in range(3)]
    finally:
        h.close()
    assert [(g.camera_id, g.seq) for g in got] == [("cam0", 1), ("cam1", 1), ("cam0", 2)]
    np.testing.assert_allclose(got[0].vectors, got[1].vectors, atol=1e-6)
    assert calls == [3]


def test_bad_model_fails_before_binding(tmp_path: Path) -> None:
    config = _config(tmp_path, str(tmp_path / "missing.onnx"))
    with pytest.raises(FacestreamError, match="not found"):
        StageThread(EmbedStage(config, 0)).start().join(60)
    assert not (tmp_path / "ipc" / "embed_in-0").exists()
