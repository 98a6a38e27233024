"""A running detect stage serves Prometheus metrics over HTTP; scrape and check the series."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bus.config import BusConfig, CameraConfig, MatchConfig, MetricsConfig, PipelineConfig
from bus.records import EndOfStream, FaceCrops, Frame
from tests.unit.detect.stage_io import counter_value, running

CAM = "cam0"
DETECT_OFFSET = 100  # bus/stage.py: detect worker i serves on metrics.base_port + 100 + i


def _free_base() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port - DETECT_OFFSET >= 1024:
            return port - DETECT_OFFSET
    raise RuntimeError("no free port")


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _get(series: dict, name: str, **labels: str) -> float | None:
    return series.get((name, tuple(sorted({"stage": "detect", "worker": "0", **labels}.items()))))


def test_metrics_endpoint_of_a_running_stage(tmp_path: Path, carphone: list[np.ndarray]) -> None:
    base = _free_base()
    cfg = PipelineConfig(
        cameras=[CameraConfig(id=CAM, source="carphone.mp4")],
        bus=BusConfig(transport="ipc", ipc_dir=tmp_path / "ipc"),
        match=MatchConfig(gallery=tmp_path / "gallery"),
        metrics=MetricsConfig(base_port=base),
    )
    port = base + DETECT_OFFSET
    big = [cv2.resize(f, (704, 576)) for f in carphone[:40]]
    with running(cfg, tmp_path) as (stage, io):
        before = _scrape(port)
        assert _get(before, "facestream_up") == 1.0
        for seq in range(5):  # one at a time: nothing dropped
            io.send(Frame(CAM, seq, time.time_ns(), stamps={}, image=carphone[seq]))
            assert isinstance(io.recv(), FaceCrops)
        for seq, image in enumerate(big, start=5):  # a burst: the stage keeps only the newest
            io.send(Frame(CAM, seq, time.time_ns(), stamps={}, image=image))
        io.send(EndOfStream(CAM, 44, time.time_ns()))
        outs, ended = 0, False
        # The end goes through embed, faces-only frames straight to match: wait for both.
        while (
            not ended
            or outs + counter_value(stage, "facestream_drops", camera=CAM, hop="capture->detect") < 40
        ):
            if isinstance(io.recv(), EndOfStream):
                ended = True
            else:
                outs += 1
        deadline = time.monotonic() + 10  # a message is counted just after it is sent
        while stage.metrics.total("facestream_messages_out") < 5 + outs + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        series = _scrape(port)
    assert _get(series, "facestream_messages_in_total", camera=CAM) == 46
    assert _get(series, "facestream_messages_out_total", camera=CAM) == 5 + outs + 1
    dropped = _get(series, "facestream_drops_total", camera=CAM, hop="capture->detect")
    assert dropped is not None and dropped > 0 and dropped + outs == 40
    assert _get(series, "facestream_stage_seconds_count", camera=CAM) == 5 + outs
    compute = _get(series, "facestream_stage_seconds_sum", camera=CAM)
    assert compute is not None and 0 < compute < 60
    assert _get(series, "facestream_capture_to_here_seconds_count", camera=CAM) == 5 + outs
    assert _get(series, "facestream_capture_to_here_seconds_bucket", camera=CAM, le="+Inf") == 5 + outs
    assert _get(series, "facestream_queue_depth") is not None
    depth = _get(series, "facestream_camera_queue_depth", camera=CAM)
    assert depth is not None and depth >= 1
