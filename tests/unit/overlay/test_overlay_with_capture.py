"""Capture -> (a Haar-cascade worker standing in for detect+match) -> overlay, all over real ipc
sockets: the two stages speak the same wire and the overlay ends by itself after the clip."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import pytest
import zmq

from bus.config import parse_config
from bus.records import EndOfStream, Face, Frame, MatchResult, record_from_message
from bus.sockets import make_socket
from bus.topology import endpoint
from bus.wire import decode
from capture.stage import CaptureStage
from overlay.stage import OverlayStage
from tests.stage_thread import StageThread


def _worker(config: Any, stop: threading.Event, seen: list[int], errors: list[BaseException]) -> None:
    try:
        _serve(config, stop, seen)
    except BaseException as exc:
        errors.append(exc)


def _serve(config: Any, stop: threading.Event, seen: list[int]) -> None:
    """PULL frames like a detect worker, find faces with OpenCV's Haar cascade, publish results."""
    cascade = cv2.CascadeClassifier(
        str(Path(cv2.__file__).parent / "data" / "haarcascade_frontalface_default.xml")
    )
    ctx: zmq.Context[Any] = zmq.Context()
    pull = make_socket(ctx, zmq.PULL, config.bus, connect=[endpoint(config.bus, "work", 0).connect])
    pub = make_socket(ctx, zmq.XPUB, config.bus, bind=[endpoint(config.bus, "results").bind])
    try:
        # Like match, take work only once the overlay listens: results sent before are lost.
        while not stop.is_set() and not pub.poll(100):
            pass
        while not stop.is_set():
            if not pull.poll(100):
                continue
            rec = record_from_message(decode(pull.recv_multipart()))
            if isinstance(rec, EndOfStream):
                pub.send_multipart(rec.to_frames())
                continue
            assert isinstance(rec, Frame)
            gray = cv2.cvtColor(rec.image, cv2.COLOR_BGR2GRAY)
            found = cascade.detectMultiScale(gray, 1.1, 3, minSize=(20, 20))
            faces = [Face(box=(float(x), float(y), float(w), float(h)), score=1.0) for x, y, w, h in found]
            h, w = rec.image.shape[:2]
            result = MatchResult(
                rec.camera_id, rec.seq, rec.ts_ns, dict(rec.stamps), frame_size=(w, h), faces=faces
            )
            pub.send_multipart(result.to_frames())
            seen.append(rec.seq)
    finally:
        ctx.destroy(linger=0)


def test_capture_to_overlay(tmp_path: Path, clip: Path) -> None:
    config = parse_config(
        {
            "cameras": [{"id": "cam0", "source": str(clip), "realtime": False}],
            "match": {"gallery": str(tmp_path / "g.fsg")},
            "bus": {"transport": "ipc", "ipc_dir": str(tmp_path / "ipc"), "hwm": 256},
            "overlay": {
                "output": str(tmp_path / "out.mp4"),
                "results_log": str(tmp_path / "r.jsonl"),
                "hold_s": 10,
            },
        }
    )
    stop = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []
    worker = threading.Thread(target=_worker, args=(config, stop, seen, errors), daemon=True)
    worker.start()
    overlay = StageThread(OverlayStage(config)).start()
    capture = StageThread(CaptureStage(config, 0)).start()
    started = time.monotonic()
    try:
        capture.join(20)
        overlay.join(30)
    finally:
        stop.set()
        worker.join(5)
    took = time.monotonic() - started
    assert not errors
    assert seen == list(range(120))
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in lines] == list(range(120))
    assert all(e["result"] for e in lines)
    assert sum(1 for e in lines if e["faces"]) > 50  # the man's face is found in most frames
    assert all(f["name"] is None for e in lines for f in e["faces"])  # detected, not identified
    cap = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 120
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(29.97, abs=0.01)
    summary = json.loads((tmp_path / "r.summary.json").read_text())
    assert summary["frames_with_result"] == 120
    assert took < 30
