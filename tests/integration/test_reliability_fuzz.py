"""Thousands of malformed messages on every input socket of every stage (real stages, real models,
real ZeroMQ sockets): no stage crashes, each message is counted once, each kind is logged once,
and a valid message still gets through afterwards.

Malformed messages are mutations of valid ones (wrong schema version, truncated or bit-flipped
header, wrong dtype or shape, truncated or extra payload, fields of the wrong type or out of
range, oversize header and payload) and pure garbage; each is checked locally to be malformed,
so the stage's counter must equal the number sent exactly. A second round sends odd but
well-formed messages (extreme sizes, degenerate faces, other kinds): they are not counted as
malformed, but must not crash the stage either.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zmq

from bus.config import PipelineConfig, parse_config
from bus.records import EndOfStream, Face, FaceCrops, Frame, MatchResult, Record, record_from_message
from bus.stage import Stage
from bus.topology import endpoint
from bus.wire import MAX_HEADER_BYTES, MAX_PART_BYTES, decode
from tests.stage_thread import StageThread, started

N_MALFORMED = 2500  # per input socket
SEED = int(os.environ.get("FACESTREAM_FUZZ_SEED", "0"))  # another value explores other mutations
N_ODD = 400
SENTINEL_SEQ = 900_000
Frames = list[bytes]

# --- building messages ------------------------------------------------------------------------
HUGE_INT = "7" * 5000  # more digits than Python converts by default
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1.5, float("nan"), float("inf"), 10**400, -(10**30), "", "x", "uint16",
    [], {}, [1], [[1, 2, 3]], {"a": 1}, [-5, 3], [40000, 2, 3], [1, 2, 3, 4, 5], "\u00e9\u20ac", HUGE_INT,
]  # fmt: skip


def _raw(frames: list[bytes | memoryview]) -> Frames:
    return [bytes(f) for f in frames]


class Mutator:
    """Seeded mutations of valid messages (reproducible: the seed is in the test)."""

    def __init__(self, valid: list[Frames], seed: int) -> None:
        self.valid = valid
        self.rng = random.Random(seed + 1000 * SEED)

    def _json_edit(self, obj: Any, depth: int = 0) -> None:
        rng = self.rng
        if isinstance(obj, dict) and obj:
            key = rng.choice(list(obj))
            if rng.random() < 0.2:
                del obj[key]
            elif rng.random() < 0.5 and depth < 4 and isinstance(obj[key], dict | list) and obj[key]:
                self._json_edit(obj[key], depth + 1)
            else:
                obj[key] = copy.deepcopy(rng.choice(ODD_VALUES))
        elif isinstance(obj, list) and obj:
            i = rng.randrange(len(obj))
            if rng.random() < 0.2:
                obj.pop(i)
            elif rng.random() < 0.5 and depth < 4 and isinstance(obj[i], dict | list) and obj[i]:
                self._json_edit(obj[i], depth + 1)
            else:
                obj[i] = copy.deepcopy(rng.choice(ODD_VALUES))

    def _header(self, header: dict[str, Any]) -> bytes:
        return json.dumps(header).replace(json.dumps(HUGE_INT), HUGE_INT).encode()

    def mutate(self) -> tuple[Frames, bool]:
        """A mutation of a valid message, and whether the wire spec (docs/wire.md) makes it
        malformed by construction: decided here, never by asking the decoder under test."""
        rng = self.rng
        frames = list(rng.choice(self.valid))
        roll = rng.random()
        if roll < 0.45:  # fields of the wrong type, missing or out of range: may still be valid
            header = json.loads(frames[1])
            for _ in range(rng.randint(1, 3)):
                self._json_edit(header)
            frames[1] = self._header(header)
            return frames, False
        if roll < 0.55:  # truncated header: a strict prefix of a JSON object is never JSON
            frames[1] = frames[1][: rng.randrange(len(frames[1]))]
            return frames, True
        if roll < 0.65 and len(frames) > 2:  # truncated payload
            i = rng.randrange(2, len(frames))
            frames[i] = frames[i][: rng.randrange(len(frames[i]))]
            # A raw part no longer has its declared size; a cut JPEG may still decode.
            return frames, json.loads(frames[1])["parts"][i - 2]["encoding"] == "raw"
        if roll < 0.75:  # flipped bytes anywhere: may land where nothing is checked
            i = rng.randrange(len(frames))
            data = bytearray(frames[i])
            for _ in range(rng.randint(1, 8)):
                if data:
                    data[rng.randrange(len(data))] = rng.randrange(256)
            frames[i] = bytes(data)
            return frames, False
        if roll < 0.85:  # garbage
            return [rng.randbytes(rng.randint(0, 200)) for _ in range(rng.randint(1, 5))], False
        if roll < 0.9:  # a part too many or too few: parts must match header.parts (or no header)
            if rng.random() < 0.5:
                frames.append(rng.randbytes(rng.randint(0, 50)))
            else:
                frames.pop()
            return frames, True
        # wrong schema version: only 1 is version 1
        header = json.loads(frames[1])
        header["schema_version"] = rng.choice([0, 2, "1", 1.0001, None, [1]])
        frames[1] = self._header(header)
        return frames, True

    def explicit(self) -> list[Frames]:
        """One of every required fault, whatever the random draw."""
        base = self.valid[0]
        header = json.loads(base[1])
        out = []
        for version in (0, 2, "1", None):
            out.append([base[0], json.dumps({**header, "schema_version": version}).encode(), *base[2:]])
        out.append([base[0], json.dumps({k: v for k, v in header.items() if k != "schema_version"}).encode()])
        out.append([base[0], base[1][: len(base[1]) // 2], *base[2:]])  # truncated header
        out.append([base[0]])  # no header at all
        if header.get("parts"):
            for change in (
                {"dtype": "object"},
                {"dtype": "complex128"},
                {"dtype": ["uint8"]},
                {"shape": [-1]},
            ):
                part = {**header["parts"][0], **change}
                out.append([base[0], json.dumps({**header, "parts": [part]}).encode(), *base[2:]])
            big = {**header["parts"][0], "shape": [4096, 4096, 3]}
            out.append([base[0], json.dumps({**header, "parts": [big]}).encode(), *base[2:]])
        padded = {**header, "pad": "x" * (MAX_HEADER_BYTES + 10)}
        out.append([base[0], json.dumps(padded).encode(), *base[2:]])  # oversize header
        part = {"dtype": "uint8", "shape": [MAX_PART_BYTES + 1], "encoding": "raw"}
        out.append([base[0], json.dumps({**header, "parts": [part]}).encode(), bytes(MAX_PART_BYTES + 1)])
        out.append([b"\xff\xfe", b"\x00" * 20])  # topic that is not UTF-8
        out.append([base[0], b"[" * 200_000])  # nesting deeper than any parser's stack
        out.append([base[0], b'{"schema_version": 1, "seq": ' + HUGE_INT.encode() + b"}"])
        return out

    def malformed(self, n: int) -> list[Frames]:
        """n messages that are malformed by construction (the stage must count every one)."""
        out = self.explicit()
        while len(out) < n:
            candidate, certain = self.mutate()
            if certain:
                out.append(candidate)
        return out

    def undecided(self, n: int, extra: list[Frames]) -> list[Frames]:
        """`extra` (valid by construction) and n mutations that may or may not be well-formed:
        whatever the stage decides about each, it must go on."""
        return [*extra, *(self.mutate()[0] for _ in range(n))]


def _odd_records(camera: str) -> list[Frames]:
    """Well-formed messages at the edges: 1-pixel and very thin images, degenerate faces."""
    faces = [
        Face(box=(0, 0, 0, 0), score=0.0, landmarks=np.zeros((5, 2), np.float32), crop_index=0),
        Face(
            box=(-1e9, 1e9, 1e12, 1e12), score=1e30, landmarks=np.full((5, 2), 1e9, np.float32), crop_index=0
        ),
        Face(
            box=(5, 5, 10, 10), score=0.5, landmarks=None, crop_index=0, name="\u00e9" * 128, similarity=-1e30
        ),
    ]
    images = [
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((1, 4000, 3), np.uint8),
        np.zeros((4000, 1, 3), np.uint8),
    ]
    out: list[Frames] = []
    for i, image in enumerate(images):
        out.append(_raw(Frame(camera, i, time.time_ns(), image=image, fps=1e30).to_frames()))
    for face in faces:
        for image in images:
            crops = FaceCrops(camera, 5, time.time_ns(), frame_size=(1, 1), faces=[face], crops=[image])
            out.append(_raw(crops.to_frames()))
        out.append(
            _raw(
                MatchResult(
                    camera, 7, time.time_ns(), frame_size=(10**6, 1), faces=[face], threshold=5
                ).to_frames()
            )
        )
    out.append(_raw(EndOfStream(camera, 2**63 - 1, -(2**63), reason="x" * 10_000).to_frames()))
    return out


# --- running one stage and checking its books ------------------------------------------------
def _send_all(sock: zmq.Socket[Any], messages: list[Frames], check: Callable[[], None]) -> None:
    """Send without losing any: wait for room instead of dropping (XPUB_NODROP / PUSH)."""
    deadline = time.monotonic() + 120
    for frames in messages:
        while True:
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
                break
            except zmq.Again:
                check()
                assert time.monotonic() < deadline, "the stage stopped reading its input"
                sock.poll(100, zmq.POLLOUT)


def _malformed_by_kind(stage: Stage) -> Counter[str]:
    counts: Counter[str] = Counter()
    for metric in stage.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "facestream_malformed_total" and sample.value:  # every kind exists at 0
                counts[sample.labels["kind"]] += int(sample.value)
    return counts


def _logged_kinds(caplog: pytest.LogCaptureFixture, stage: Stage) -> Counter[str]:
    pattern = re.compile(r"dropped a malformed message \((\w+):")
    found: Counter[str] = Counter()
    for record in caplog.records:
        if record.name == f"facestream.{stage.name}.0" and (m := pattern.search(record.getMessage())):
            found[m.group(1)] += 1
    return found


def _check_books(stage: Stage, sent: int, caplog: pytest.LogCaptureFixture) -> None:
    counted = _malformed_by_kind(stage)
    assert sum(counted.values()) == sent, counted
    logged = _logged_kinds(caplog, stage)
    assert set(logged) == set(counted), (logged, counted)
    assert all(n == 1 for n in logged.values()), logged
    assert {"bad_version", "malformed_header", "bad_dtype", "bad_shape", "oversize"} <= set(counted)


def _alive(runner: StageThread) -> Callable[[], None]:
    def check() -> None:
        assert runner.thread.is_alive(), f"{runner.stage.name} crashed: {runner.error!r}"

    return check


def _wait_for(
    sock: zmq.Socket[Any], want: Callable[[Record], bool], runner: StageThread, timeout: float = 30
) -> Record:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _alive(runner)()
        if sock.poll(100):
            record = record_from_message(decode(sock.recv_multipart()))
            if want(record):
                return record
    raise AssertionError(f"the valid message did not come out of {runner.stage.name}")


# --- fixtures -----------------------------------------------------------------------------------
def _config(tmp_path: Path, **sections: Any) -> PipelineConfig:
    (tmp_path / "ipc").mkdir(exist_ok=True)
    data: dict[str, Any] = {
        "cameras": [{"id": "cam0", "source": "unused.mp4"}, {"id": "cam1", "source": "unused.mp4"}],
        "bus": {"transport": "ipc", "ipc_dir": str(tmp_path / "ipc"), "hwm": 10_000},
        "match": {"gallery": str(tmp_path / "gallery.fsg")},
        **sections,
    }
    return parse_config(data)


@pytest.fixture(scope="module")
def photo_frame(photos: Path) -> np.ndarray:
    image = cv2.imread(str(photos / "macron_1.jpg"))
    assert image is not None
    return image


def _frame(camera: str, seq: int, image: np.ndarray) -> Frames:
    return _raw(Frame(camera, seq, time.time_ns(), image=image, fps=25.0).to_frames())


def _real_crops(image: np.ndarray, seq: int, config: PipelineConfig) -> FaceCrops:
    from detect.crops import crop_face
    from detect.factory import make_detector

    faces = make_detector(config.detect).detect(image)
    assert faces
    crops = []
    for i, face in enumerate(faces):
        crop, origin = crop_face(image, face, config.detect.crop_margin)
        face.crop_index, face.crop_origin = i, origin
        crops.append(crop)
    h, w = image.shape[:2]
    return FaceCrops("cam0", seq, time.time_ns(), frame_size=(w, h), faces=faces, crops=crops)


# --- the stages ---------------------------------------------------------------------------------
def test_detect_survives_malformed_frames(
    tmp_path: Path, photo_frame: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    from detect.stage import DetectStage

    config = _config(tmp_path)
    small = np.zeros((24, 32, 3), np.uint8)
    valid = [_frame("cam0", 3, small), _raw(EndOfStream("cam0", 3, 1).to_frames())]
    mutator = Mutator(valid, seed=1)
    ctx: zmq.Context[Any] = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.bind(endpoint(config.bus, "work", 0).bind)
    out = ctx.socket(zmq.PULL)
    out.bind(endpoint(config.bus, "embed_in", 0).bind)
    stage = DetectStage(config, 0, ready_file=tmp_path / "ready")
    caplog.set_level(logging.WARNING)
    try:
        with started(stage, timeout=120) as runner:
            bad = mutator.malformed(N_MALFORMED)
            _send_all(push, bad, _alive(runner))
            _send_all(push, [_frame("cam0", SENTINEL_SEQ, photo_frame)], _alive(runner))
            got = _wait_for(out, lambda r: r.seq == SENTINEL_SEQ, runner)
            assert isinstance(got, FaceCrops) and got.faces
            _check_books(stage, len(bad), caplog)

            odd = mutator.undecided(N_ODD, _odd_records("cam0"))
            _send_all(push, odd, _alive(runner))
            _send_all(push, [_frame("cam0", SENTINEL_SEQ + 1, photo_frame)], _alive(runner))
            _wait_for(out, lambda r: r.seq == SENTINEL_SEQ + 1, runner)

        assert runner.error is None
    finally:
        ctx.destroy(linger=0)


def test_embed_survives_malformed_faces(
    tmp_path: Path, photo_frame: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    from bus.records import Embeddings
    from embed.stage import EmbedStage

    config = _config(tmp_path)
    sentinel = _real_crops(photo_frame, SENTINEL_SEQ, config)
    valid = [_raw(sentinel.to_frames()), _raw(EndOfStream("cam0", 3, 1).to_frames())]
    mutator = Mutator(valid, seed=2)
    ctx: zmq.Context[Any] = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(endpoint(config.bus, "embed_in", 0).connect)
    out = ctx.socket(zmq.PULL)
    out.bind(endpoint(config.bus, "match_in").bind)
    stage = EmbedStage(config, 0, ready_file=tmp_path / "ready")
    caplog.set_level(logging.WARNING)
    try:
        with started(stage, timeout=120) as runner:
            bad = mutator.malformed(N_MALFORMED)
            _send_all(push, bad, _alive(runner))
            _send_all(push, [_raw(sentinel.to_frames())], _alive(runner))
            got = _wait_for(out, lambda r: r.seq == SENTINEL_SEQ, runner)
            assert isinstance(got, Embeddings) and got.vectors.shape == (len(sentinel.crops), 128)
            _check_books(stage, len(bad), caplog)

            odd = mutator.undecided(N_ODD, _odd_records("cam0"))
            _send_all(push, odd, _alive(runner))
            again = _real_crops(photo_frame, SENTINEL_SEQ + 1, config)
            _send_all(push, [_raw(again.to_frames())], _alive(runner))
            _wait_for(out, lambda r: r.seq == SENTINEL_SEQ + 1, runner)

            # Over the bound socket's size limit: libzmq cuts this sender off before buffering
            # the frame; the sender reconnects and its next message gets through.
            counted = sum(_malformed_by_kind(stage).values())
            _send_all(push, [[b"cam0", b"x" * (3 * MAX_PART_BYTES)]], _alive(runner))
            last = _real_crops(photo_frame, SENTINEL_SEQ + 2, config)
            _send_all(push, [_raw(last.to_frames())], _alive(runner))
            _wait_for(out, lambda r: r.seq == SENTINEL_SEQ + 2, runner)
            assert sum(_malformed_by_kind(stage).values()) == counted  # never reached the stage
        assert runner.error is None
    finally:
        ctx.destroy(linger=0)


def test_match_survives_malformed_embeddings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from bus.records import Embeddings
    from match.gallery import Gallery
    from match.stage import MatchStage

    config = _config(tmp_path)
    rng = np.random.default_rng(0)
    alice = rng.normal(size=(1, 128)).astype(np.float32)
    gallery = Gallery.create("fuzz-model", 128, 0.5)
    gallery.add("alice", alice)
    gallery.save(config.match.gallery)

    def embeddings(seq: int) -> Frames:
        face = Face(box=(1, 2, 30, 30), score=0.9, crop_index=0)
        rec = Embeddings(
            "cam0",
            seq,
            time.time_ns(),
            frame_size=(64, 64),
            faces=[face],
            vectors=alice,
            model_id="fuzz-model",
        )
        return _raw(rec.to_frames())

    mutator = Mutator([embeddings(3), _raw(EndOfStream("cam0", 3, 1).to_frames())], seed=3)
    ctx: zmq.Context[Any] = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(endpoint(config.bus, "match_in").connect)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVHWM, 100_000)
    sub.connect(endpoint(config.bus, "results").connect)
    stage = MatchStage(config, 0, ready_file=tmp_path / "ready")
    caplog.set_level(logging.WARNING)

    def named(seq: int) -> Callable[[Record], bool]:
        return lambda r: isinstance(r, MatchResult) and r.seq == seq and r.faces[0].name == "alice"

    try:
        with started(stage, timeout=120) as runner:
            for _ in range(50):  # the results subscription takes a moment (slow joiner)
                _send_all(push, [embeddings(1)], _alive(runner))
                if sub.poll(200):
                    break
            bad = mutator.malformed(N_MALFORMED)
            _send_all(push, bad, _alive(runner))
            _send_all(push, [embeddings(SENTINEL_SEQ)], _alive(runner))
            _wait_for(sub, named(SENTINEL_SEQ), runner)
            _check_books(stage, len(bad), caplog)

            zero = Embeddings(
                "cam0",
                4,
                1,
                faces=[Face(box=(0, 0, 1, 1), score=1, crop_index=0)],
                vectors=np.zeros((1, 128), np.float32),
                model_id="fuzz-model",
            )
            _send_all(
                push,
                [*mutator.undecided(N_ODD, _odd_records("cam0")), _raw(zero.to_frames())],
                _alive(runner),
            )
            _send_all(push, [embeddings(SENTINEL_SEQ + 1)], _alive(runner))
            _wait_for(sub, named(SENTINEL_SEQ + 1), runner)
        assert runner.error is None
    finally:
        ctx.destroy(linger=0)


def test_overlay_survives_malformed_frames_and_results(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from overlay.stage import OverlayStage

    log_path = tmp_path / "results.jsonl"
    config = _config(tmp_path, overlay={"results_log": str(log_path), "hold_s": 0.2, "idle_exit_s": 1.0})
    image = np.full((48, 64, 3), 90, np.uint8)
    face = Face(box=(5, 5, 20, 20), score=0.9, crop_index=0, name="alice", similarity=0.8)

    def result(camera: str, seq: int) -> Frames:
        return _raw(MatchResult(camera, seq, 10**18 + seq, frame_size=(64, 48), faces=[face]).to_frames())

    def frame(camera: str, seq: int) -> Frames:
        return _raw(Frame(camera, seq, 10**18 + seq, image=image, fps=25.0).to_frames())

    ctx: zmq.Context[Any] = zmq.Context()
    pubs = {}
    for name, hop, index in (("frames", "frames", 0), ("frames1", "frames", 1), ("results", "results", 0)):
        pub = ctx.socket(zmq.XPUB)
        pub.setsockopt(zmq.XPUB_NODROP, 1)
        pub.setsockopt(zmq.SNDHWM, 100_000)
        pub.bind(endpoint(config.bus, hop, index).bind)
        pubs[name] = pub  # "frames": camera cam0's own link, "frames1": cam1's
    stage = OverlayStage(config, 0, ready_file=tmp_path / "ready")
    caplog.set_level(logging.WARNING)

    def written(camera: str, seq: int) -> bool:
        lines = [json.loads(x) for x in log_path.read_text().splitlines()] if log_path.exists() else []
        return any(x["camera_id"] == camera and x["seq"] == seq and x["result"] for x in lines)

    def through(seq: int, runner: StageThread) -> None:
        _send_all(pubs["frames1"], [frame("cam1", seq)], _alive(runner))
        _send_all(pubs["results"], [result("cam1", seq)], _alive(runner))
        deadline = time.monotonic() + 30
        while not written("cam1", seq):
            _alive(runner)()
            assert time.monotonic() < deadline, "the valid frame and result were not written"
            time.sleep(0.05)

    try:
        with started(stage, timeout=120) as runner:
            for pub in pubs.values():  # wait for the overlay's subscriptions
                assert pub.poll(10_000) and pub.recv()[:1] == b"\x01"
            bad = {
                "frames": Mutator([frame("cam0", 3), _raw(EndOfStream("cam0", 3, 1).to_frames())], seed=4),
                "results": Mutator([result("cam0", 3), _raw(EndOfStream("cam0", 3, 1).to_frames())], seed=5),
            }
            sent = 0
            for hop, mutator in bad.items():
                messages = mutator.malformed(N_MALFORMED)
                _send_all(pubs[hop], messages, _alive(runner))
                sent += len(messages)
            through(0, runner)
            _check_books(stage, sent, caplog)

            for hop, mutator in bad.items():
                _send_all(pubs[hop], mutator.undecided(N_ODD, _odd_records("cam0")), _alive(runner))
            through(1, runner)
            for camera, link in (("cam0", "frames"), ("cam1", "frames1")):  # both end: the overlay finishes
                _send_all(pubs[link], [_raw(EndOfStream(camera, 1, 1).to_frames())], _alive(runner))
            runner.thread.join(30)
            assert not runner.thread.is_alive(), "the overlay did not finish after both cameras ended"
        assert runner.error is None
        assert stage.summary is not None and stage.summary["per_camera"]["cam1"]["frames_with_result"] == 2
    finally:
        ctx.destroy(linger=0)
