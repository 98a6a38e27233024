"""MatchStage with tracked faces and real SFace embeddings: stable names, `published` numbers,
and a backlog searched at once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zmq

from bus.records import Embeddings, EndOfStream, Face, MatchResult, record_from_message
from bus.topology import endpoint
from bus.wire import decode
from detect.yunet import YuNetDetector
from embed.model import EmbeddingModel
from match.gallery import UNKNOWN, Gallery
from match.stage import MatchStage
from tests.unit.match.stage_io import make_config, running

PHOTOS = Path(__file__).resolve().parents[3] / "deploy" / "demo_assets" / "photos"


@pytest.fixture(scope="module")
def vectors() -> dict[str, tuple[np.ndarray, Face]]:
    detector, model = YuNetDetector(), EmbeddingModel.load("sface")
    out = {}
    for photo in sorted(PHOTOS.glob("*.jpg")):
        image = cv2.imread(str(photo))
        assert image is not None
        face = detector.detect(image)[0]
        out[photo.stem] = (model.embed_faces(image, [face])[0], face)
    return out


def _frame(seq: int, track_id: int, vec: np.ndarray | None, ts_ns: int) -> Embeddings:
    face = Face(box=(100.0, 80.0, 120.0, 150.0), score=0.9, track_id=track_id, quality=0.5)
    if vec is not None:
        face.crop_index = 0
    rows = np.zeros((0, 128), np.float32) if vec is None else vec[None, :].astype(np.float32)
    return Embeddings("cam0", seq, ts_ns, {}, (640, 480), [face], rows, "sface-2021dec")


def test_a_tracks_name_is_withdrawn_by_an_embedding_of_someone_else(
    tmp_path: Path, vectors: dict[str, tuple[np.ndarray, Face]]
) -> None:
    gallery = tmp_path / "gallery.fsg"
    g = Gallery.create("sface-2021dec", 128, 0.363)
    for name in ("obama_1", "macron_1", "ardern_1"):
        g.add(name.split("_")[0], vectors[name][0])
    g.save(gallery)
    # What the track's embeddings say, frame by frame (None: not embedded, the track's name applies).
    # Biden takes obama's place on the track: from that frame on, "obama" is a claim nothing backs.
    plan: list[str | None] = [
        "obama_2",
        None,
        None,
        "obama_3",
        None,
        "biden_1",
        None,
        None,
        "obama_2",
        "obama_3",
    ]
    truth = {p: g.identify(vectors[p][0][None, :])[0].name for p in plan if p is not None}
    assert truth == {"obama_2": "obama", "obama_3": "obama", "biden_1": UNKNOWN}
    base = time.time_ns()
    with running(make_config(tmp_path, gallery), tmp_path) as (_stage, link):
        results = []
        for seq, who in enumerate(plan):
            vec = None if who is None else vectors[who][0]
            link.send(_frame(seq, 64, vec, base + seq * 33_000_000))
            got = link.recv()
            assert isinstance(got, MatchResult)
            results.append(got)
    # Withdrawn at once; back only when obama outvotes the Unknown (one against one keeps it).
    assert [r.faces[0].name for r in results] == ["obama"] * 5 + [UNKNOWN] * 4 + ["obama"]
    assert [r.published for r in results] == list(range(1, len(plan) + 1))
    sims = [r.faces[0].similarity for r in results]
    assert all(s is not None for s in sims)
    assert all(
        s is not None and s > 0.363 for s, r in zip(sims, results, strict=True) if r.faces[0].name == "obama"
    )


def test_a_backlog_is_searched_once_and_every_frame_is_answered(
    tmp_path: Path, vectors: dict[str, tuple[np.ndarray, Face]], monkeypatch: pytest.MonkeyPatch
) -> None:
    gallery = tmp_path / "gallery.fsg"
    g = Gallery.create("sface-2021dec", 128, 0.363)
    g.add("macron", vectors["macron_1"][0])
    g.save(gallery)
    calls: list[int] = []
    original = Gallery.identify

    def counting(self: Gallery, queries: np.ndarray, threshold: float | None = None, k: int = 1) -> list:
        calls.append(len(queries))
        return original(self, queries, threshold, k)

    monkeypatch.setattr(Gallery, "identify", counting)
    cfg = make_config(tmp_path, gallery)
    stage = MatchStage(cfg)
    stage.on_start()  # sockets open; batches are fed directly, so which frames wait together is exact
    ctx: zmq.Context[Any] = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"cam0")
    sub.connect(endpoint(cfg.bus, "results").connect)
    try:
        deadline = time.monotonic() + 10
        while not sub.poll(50):  # PUB drops everything until the subscription has arrived
            assert time.monotonic() < deadline
            stage.process_batch([EndOfStream("cam0", 0, time.time_ns())], stage.inputs[0])
        while sub.poll(100):
            sub.recv_multipart()
        people = ["macron_2", "obama_2", "macron_1"]
        frames = [_frame(s, 64 * (s + 1), vectors[people[s % 3]][0], time.time_ns()) for s in range(6)]
        wire = [record_from_message(decode(f.to_frames())) for f in frames]
        stage.process_batch(wire, stage.inputs[0])
        got = []
        while sub.poll(500):
            got.append(record_from_message(decode(sub.recv_multipart())))
    finally:
        stage.ctx.destroy(linger=0)
        ctx.destroy(linger=0)
    assert calls == [6]  # six frames, one search
    assert [r.seq for r in got] == list(range(6))
    names = [r.faces[0].name for r in got if isinstance(r, MatchResult)]
    assert names == ["macron", UNKNOWN, "macron"] * 2
