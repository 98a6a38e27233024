"""Every labelled series a stage exposes exists at zero from the start, the process's own metrics
come with them, and processing errors are counted apart from malformed messages."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import zmq
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bus.config import parse_config
from bus.errors import Failure, Fault
from bus.records import Frame
from bus.sockets import make_socket
from bus.topology import STAGES, endpoint
from deploy.stages import stage_class
from detect.stage import DetectStage
from tests.stage_thread import running_stage, wait_for


def _config(tmp_path: Path) -> Any:
    return parse_config(
        {
            "cameras": [{"id": "door", "source": "x.mp4"}, {"id": "yard", "source": "y.mp4"}],
            "match": {"gallery": str(tmp_path / "g.fsg")},
            "bus": {"transport": "ipc", "ipc_dir": str(tmp_path)},
            "events": {"data_dir": str(tmp_path / "data")},  # every stage can be built
            "web": {},
            "overlay": {"mjpeg_port": 8080},  # the console needs one; nothing is served here
        }
    )


def _samples(registry: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()  # what Prometheus scrapes, parsed by its own parser
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.parametrize("name", list(STAGES))
def test_every_series_exists_at_zero_before_the_first_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("FACESTREAM_RESTARTS", "3")
    stage = stage_class(name)(_config(tmp_path), 0)  # constructed, not started: nothing has happened
    samples = _samples(stage.metrics.registry)
    base = {("stage", name), ("worker", "0")}

    def value(metric: str, **labels: str) -> float | None:
        return samples.get((metric, frozenset(base | set(labels.items()))))

    for camera in ("door", "yard"):
        assert value("facestream_messages_in_total", camera=camera) == 0
        for hop in STAGES[name].drop_hops:
            assert value("facestream_drops_total", camera=camera, hop=hop) == 0, hop
        assert value("facestream_stage_seconds_count", camera=camera) == 0
    for fault in Fault:
        assert value("facestream_malformed_total", kind=fault.value) == 0, fault
    for failure in Failure:
        assert value("facestream_errors_total", kind=failure.value) == 0, failure
    assert value("facestream_stage_restarts") == 3
    assert value("facestream_up") == 0
    assert (samples[("process_resident_memory_bytes", frozenset())] or 0) > 0
    assert samples[("process_start_time_seconds", frozenset())] > 0
    assert ("process_cpu_seconds_total", frozenset()) in samples


def test_a_detector_failure_is_an_error_not_a_malformed_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _config(tmp_path)
    stage = DetectStage(cfg, 0, ready_file=tmp_path / "ready")
    ctx: zmq.Context[Any] = zmq.Context()
    push = make_socket(ctx, zmq.PUSH, cfg.bus, bind=[endpoint(cfg.bus, "work", 0).bind])
    make_socket(ctx, zmq.PULL, cfg.bus, bind=[endpoint(cfg.bus, "embed_in", 0).bind])
    real_start = stage.on_start

    def start_with_a_broken_detector() -> None:
        real_start()

        def broken(image: np.ndarray) -> list[Any]:
            raise cv2.error("the detector failed")

        monkeypatch.setattr(stage.detector, "detect", broken)

    monkeypatch.setattr(stage, "on_start", start_with_a_broken_detector)
    errors = {"stage": "detect", "worker": "0", "kind": Failure.DETECT_FAILED.value}

    def counted() -> bool:
        image = np.zeros((48, 64, 3), np.uint8)
        push.send_multipart(Frame("door", 0, time.time_ns(), image=image).to_frames())
        return bool(stage.metrics.registry.get_sample_value("facestream_errors_total", errors))

    try:
        with running_stage(stage, timeout=60):
            wait_for(counted, 60, "the detector's failure was never counted", every=0.1)
    finally:
        ctx.destroy(linger=0)
    assert stage.metrics.total("facestream_malformed") == 0
