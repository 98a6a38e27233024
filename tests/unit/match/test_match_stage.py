"""MatchStage end to end over real ZeroMQ ipc sockets, with the stage loop in a thread."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest

from bus.errors import FacestreamError
from bus.records import Embeddings, EndOfStream, Face, MatchResult
from match.gallery import UNKNOWN, Gallery
from match.stage import MatchStage
from tests.stage_thread import wait_for
from tests.unit.match.stage_io import make_config, running

DIM = 128
MODEL = "sface-2021dec"
BASIS = np.linalg.qr(np.random.default_rng(0).standard_normal((DIM, DIM)))[0].T.astype(np.float32)
ALICE, BOB, CAROL, NOBODY, NOISE = BASIS[0], BASIS[1], BASIS[2], BASIS[3], BASIS[4]


def near(v: np.ndarray, cos: float) -> np.ndarray:
    return (cos * v + np.sqrt(1 - cos**2) * NOISE).astype(np.float32)


def save_gallery(path: Path, people: dict[str, np.ndarray], model: str = MODEL) -> None:
    g = Gallery.create(model, DIM, 0.5)
    for name, vec in people.items():
        g.add(name, vec)
    g.save(path)


def embeddings(
    seq: int, vectors: list[np.ndarray], model: str = MODEL, extra_face: bool = True
) -> Embeddings:
    faces = [Face(box=(10.0 * i, 5.0, 40.0, 40.0), score=0.9, crop_index=i) for i in range(len(vectors))]
    if extra_face:  # a face that was not embedded (tracked): it must come back with no name
        faces.append(Face(box=(100.0, 5.0, 20.0, 20.0), score=0.8, track_id=7))
    return Embeddings(
        camera_id="cam0",
        seq=seq,
        ts_ns=time.time_ns() - 1_000_000,
        stamps={"capture": time.time_ns() - 900_000, "embed": time.time_ns()},
        frame_size=(640, 480),
        faces=faces,
        vectors=np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, DIM), np.float32),
        model_id=model,
    )


def malformed(stage: MatchStage, kind: str) -> float:
    value = stage.metrics.registry.get_sample_value(
        "facestream_malformed_total", {"stage": "match", "worker": "0", "kind": kind}
    )
    return value or 0.0


@pytest.fixture()
def gallery_path(tmp_path: Path) -> Path:
    path = tmp_path / "gallery.npz"
    save_gallery(path, {"alice": ALICE, "bob": BOB})
    return path


def test_names_known_and_unknown(tmp_path: Path, gallery_path: Path) -> None:
    with running(make_config(tmp_path, gallery_path), tmp_path) as (stage, link):
        sent = embeddings(41, [near(ALICE, 0.8), NOBODY])
        link.send(sent)
        result = link.recv()
        assert isinstance(result, MatchResult)
        assert (result.camera_id, result.seq, result.ts_ns) == ("cam0", 41, sent.ts_ns)
        assert result.frame_size == (640, 480) and result.model_id == MODEL
        assert result.threshold == pytest.approx(0.5)
        assert [f.name for f in result.faces] == ["alice", UNKNOWN, None]
        sims = [f.similarity for f in result.faces]
        assert sims[0] == pytest.approx(0.8, abs=1e-4)
        assert sims[1] == pytest.approx(0.0, abs=1e-4)  # NOBODY is orthogonal to everyone
        assert sims[2] is None
        assert result.faces[2].track_id == 7
        assert result.stamps["embed"] == sent.stamps["embed"]
        assert sent.stamps["embed"] <= result.stamps["match"] <= time.time_ns()

        link.send(embeddings(42, [], extra_face=True))  # a frame whose faces were all tracked
        empty = link.recv()
        assert isinstance(empty, MatchResult) and [f.name for f in empty.faces] == [None]

        link.send(EndOfStream(camera_id="cam0", seq=99, ts_ns=123, reason="end of file"))
        eos = link.recv()
        assert isinstance(eos, EndOfStream) and (eos.seq, eos.ts_ns, eos.reason) == (99, 123, "end of file")
        assert stage.metrics.total("facestream_messages_out") >= 3
        assert stage.metrics.total("facestream_malformed") == 0


def test_configured_threshold_overrides_gallery(tmp_path: Path, gallery_path: Path) -> None:
    with running(make_config(tmp_path, gallery_path, threshold=0.9), tmp_path) as (_, link):
        link.send(embeddings(1, [near(ALICE, 0.8), BOB]))
        result = link.recv()
        assert isinstance(result, MatchResult) and result.threshold == pytest.approx(0.9)
        assert [f.name for f in result.faces] == [UNKNOWN, "bob", None]


def test_model_mismatch_is_counted_and_stage_continues(tmp_path: Path, gallery_path: Path) -> None:
    with running(make_config(tmp_path, gallery_path), tmp_path) as (stage, link):
        link.send(embeddings(1, [ALICE], model="arcface-r100"))
        link.send(embeddings(2, [BOB]))
        result = link.recv()
        assert isinstance(result, MatchResult)
        assert result.seq == 2 and result.faces[0].name == "bob"  # seq 1 was dropped
        assert malformed(stage, "model_mismatch") == 1
        link.send(embeddings(3, [np.ones(64, np.float32)]))  # right model id, wrong size
        link.send(embeddings(4, [ALICE]))
        result = link.recv()
        assert isinstance(result, MatchResult) and result.seq == 4
        assert malformed(stage, "bad_payload") == 1
        assert not link.sub.poll(200)  # nothing else was published


def test_gallery_hot_reload(tmp_path: Path, gallery_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="facestream.match")
    with running(make_config(tmp_path, gallery_path), tmp_path) as (stage, link):
        link.send(embeddings(1, [CAROL]))
        first = link.recv()
        assert isinstance(first, MatchResult) and first.faces[0].name == UNKNOWN

        save_gallery(gallery_path, {"alice": ALICE, "bob": BOB, "carol": CAROL})
        wait_for(lambda: stage.gallery.names == ["alice", "bob", "carol"], 30, "the gallery was not reloaded")
        link.send(embeddings(2, [CAROL]))
        got = link.recv()
        assert isinstance(got, MatchResult) and got.faces[0].name == "carol"
        assert stage.gallery.names == ["alice", "bob", "carol"]

        # A broken or foreign replacement is refused (each refusal seen, not assumed after a
        # sleep); the gallery in memory stays in use.
        def refusals() -> int:
            return sum("gallery reload failed" in r.getMessage() for r in caplog.records)

        gallery_path.write_bytes(b"garbage, not a gallery")
        wait_for(lambda: refusals() >= 1, 30, "the broken gallery file was never refused")
        save_gallery(gallery_path, {"mallory": CAROL}, model="other-model")
        wait_for(lambda: refusals() >= 2, 30, "the other model's gallery was never refused")
        link.send(embeddings(100, [CAROL]))
        got = link.recv()
        assert isinstance(got, MatchResult) and got.faces[0].name == "carol"
        assert stage.gallery.model_id == MODEL


def test_missing_gallery_stops_with_one_line(tmp_path: Path) -> None:
    stage = MatchStage(make_config(tmp_path, tmp_path / "none.npz"))
    with pytest.raises(FacestreamError) as info:
        stage.run()
    assert "enroll faces first with `facestream enroll`" in str(info.value)
    assert "\n" not in str(info.value)
