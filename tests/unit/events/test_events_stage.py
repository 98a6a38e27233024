"""The events process over real ZeroMQ sockets: real carphone frames, results as match sends them.

The test plays match (PUB results) and capture (XPUB frames, as capture binds it) and checks that
events asks for frames only while it wants a snapshot, and stores the sighting with its face.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zmq

from bus.config import PipelineConfig, parse_config
from bus.records import Face, Frame, MatchResult
from bus.sockets import make_socket
from bus.topology import endpoint
from events.join import WANT_S
from events.stage import EventsStage
from events.store import EventStore, Query
from tests.stage_thread import StageThread, clip, wait_for

__all__ = ["clip"]
BOX = (55.0, 30.0, 60.0, 70.0)  # the driver's face in the first carphone frames


def _config(tmp_path: Path) -> PipelineConfig:
    return parse_config(
        {
            "cameras": [{"id": "cam0", "source": "x.mp4"}],
            "match": {"gallery": str(tmp_path / "g.fsg")},
            "bus": {"transport": "ipc", "ipc_dir": str(tmp_path / "ipc")},
            "events": {"data_dir": str(tmp_path / "data"), "end_after_s": 1.0, "flush_s": 0.2},
        }
    )


def _subscriptions(xpub: zmq.Socket[Any]) -> list[bytes]:
    out = []
    while xpub.poll(0):
        out.append(xpub.recv())
    return out


def test_events_stores_a_sighting_with_its_snapshot_and_vector(tmp_path: Path, clip: Path) -> None:
    config = _config(tmp_path)
    ctx: zmq.Context[Any] = zmq.Context()
    results = make_socket(ctx, zmq.PUB, config.bus, bind=[endpoint(config.bus, "results").bind])
    frames = make_socket(ctx, zmq.XPUB, config.bus, bind=[endpoint(config.bus, "frames", 0).bind])
    stage = EventsStage(config)
    runner = StageThread(stage).start()
    cap = cv2.VideoCapture(str(clip))
    images = [cap.read()[1] for _ in range(40)]
    vec = np.random.default_rng(1).standard_normal((1, 128)).astype(np.float32)
    vec /= np.linalg.norm(vec)
    try:
        deadline = time.monotonic() + 60
        seen: list[bytes] = []
        while not seen and time.monotonic() < deadline:  # events connected, subscribed to nothing yet
            results.send_multipart(MatchResult("cam0", 0, time.time_ns(), frame_size=(176, 144)).to_frames())
            time.sleep(0.1)
            assert _subscriptions(frames) == []
            seen = [b"up"] if stage.metrics.total("facestream_messages_in") else []
        for seq, image in enumerate(images, start=1):
            ts = time.time_ns()
            frames.send_multipart(Frame("cam0", seq, ts, image=image).to_frames())
            face = Face(BOX, 0.9, track_id=64, crop_index=0, name="Unknown", similarity=0.12, quality=0.6)
            results.send_multipart(
                MatchResult(
                    "cam0", seq, ts, frame_size=(176, 144), faces=[face], model_id="m", vectors=vec
                ).to_frames()
            )
            seen += _subscriptions(frames)
            time.sleep(0.03)
        assert b"\x01cam0\x00" in seen  # a first snapshot was wanted: events read frames (cam0 only)
        store = EventStore.open(config.events)  # type: ignore[arg-type]
        rows: list = []
        while time.monotonic() < deadline:
            rows = store.query(Query())[0]
            if rows and rows[0].snapshot is not None and rows[0].frames == len(images):
                break
            time.sleep(0.1)
        assert len(rows) == 1, rows
        row = rows[0]
        assert row.name == "Unknown" and row.camera_id == "cam0" and row.track_id == 64
        assert row.best_similarity is not None and abs(row.best_similarity - 0.12) < 1e-6
        path = store.snapshot_file(row)
        assert path is not None
        snap = cv2.imread(str(path))
        assert snap is not None and 60 <= snap.shape[1] <= 192
        np.testing.assert_allclose(store.embeddings([row.id])[row.id][0], vec[0])

        def let_go() -> bool:  # no better face came: after WANT_S events lets go of the frames
            seen.extend(_subscriptions(frames))
            return b"\x00cam0\x00" in seen

        wait_for(let_go, WANT_S + 30, "events never let go of cam0's frames")
        store.close()
    finally:
        stage.request_stop()
        runner.join(20)
        ctx.destroy(linger=0)
