"""Red team: the attacks of issue 12 against a live `facestream run`, made with plain clients
(pyzmq written from docs/wire.md, Prometheus' own parser, urllib), as an outsider would.

One pipeline serves the whole module: camera "file" loops the carphone clip, camera "ipcam" is an
HTTP MJPEG camera the tests switch off and on; metrics and the MJPEG page are on. Each test
attacks it and checks that the service stays up, keeps naming faces, and counts or shows what
happened. The one-line error checks of the CLI are in tests/unit/deploy/test_deploy_one_line.py,
the overlay's own defences (end of stream only from a camera's frames, bounded `published`
gaps) in tests/unit/overlay/test_overlay_hostile.py.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from prometheus_client.parser import text_string_to_metric_families

from bus.records import Embeddings, EndOfStream
from bus.topology import STAGES, bus_port, metrics_port
from deploy.assets import carphone_video
from tests.conftest import facestream, free_base_port
from tests.fake_cameras import LIVE, REFUSED, SILENT, ToggleCamera
from tests.forge import claiming, jpeg, jpeg_message
from tests.soak.harness import PipelineRun, write_config

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
READ_TIMEOUT_S = 5.0  # capture's documented stall detection (CaptureStage.open_timeout_s)


@dataclass
class Live:
    run: PipelineRun
    config: Any
    camera: ToggleCamera
    folder: Path
    base: int
    mjpeg: int
    first_scrape: dict[str, Samples]  # stage label -> metrics at start-up, before any attack


def _free_port(avoid: list[int]) -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if all(abs(port - other) > 400 for other in avoid):
            return port


def scrape(port: int) -> Samples:
    """{(name, frozenset(labels)): value} of one /metrics endpoint, read by Prometheus' parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    for (metric, lab), v in samples.items():
        if metric == name and set(labels.items()) <= set(lab):
            return float(v)
    return None


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        float(v) for (metric, lab), v in samples.items() if metric == name and set(labels.items()) <= set(lab)
    )


def vm_peak_kib(pid: int) -> int:
    """Peak resident memory (VmHWM) of a process: a decode that allocated gigabytes shows here."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def wait_for(predicate: Any, timeout: float, what: str, live: Live | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if live is not None:
            assert live.run.alive(), f"the pipeline stopped:\n{live.run.stderr()[-3000:]}"
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def fresh_results(live: Live, camera: str, count: int, after_ns: int, timeout: float = 60.0) -> None:
    """`count` results of `camera` for frames captured after `after_ns`; the service must be up."""
    got = 0
    deadline = time.monotonic() + timeout
    while got < count:
        assert live.run.alive(), f"the pipeline stopped:\n{live.run.stderr()[-3000:]}"
        assert time.monotonic() < deadline, f"{got}/{count} fresh results of {camera}"
        msg = live.run.next_message(1.0)
        if msg and msg["kind"] == "result" and msg["camera_id"] == camera and msg["ts_ns"] > after_ns:
            got += 1


def overlay_lines_after(live: Live, after_ns: int) -> int:
    path = live.folder / "results.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return sum(1 for line in lines if line.strip() and json.loads(line)["ts_ns"] > after_ns)


def mjpeg_status(live: Live) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{live.mjpeg}/status.json", timeout=10) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, photos: Path) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("redteam")
    gallery = folder / "gallery.fsg"
    clip = str(carphone_video())
    assert facestream(["enroll", str(gallery), "--camera", clip, "--name", "driver"]).returncode == 0
    assert facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    camera = ToggleCamera()
    base = free_base_port()
    metrics = free_base_port(avoid=[base])
    mjpeg = _free_port([base, metrics])
    cameras = [
        {"id": "file", "source": clip, "loop": True},
        {"id": "ipcam", "source": camera.url, "retry_s": 0.2, "retry_max_s": 0.5},
    ]
    config_path = write_config(
        folder, gallery, base, cameras=cameras, metrics={"base_port": metrics}, overlay={"mjpeg_port": mjpeg}
    )
    from bus.config import load_config

    config = load_config(config_path)
    run = PipelineRun(config_path, base).start()
    try:
        live = Live(run, config, camera, folder, base, mjpeg, {})
        for name in ("file", "ipcam"):  # every camera's capture is up and its frames are named
            fresh_results(live, name, 1, 0, timeout=180)
        ports = {
            f"{name}-{i}": metrics_port(config, name, i) or 0
            for name, spec in STAGES.items()
            for i in range(spec.count(config))
        }
        live.first_scrape.update({label: scrape(port) for label, port in ports.items()})
        yield live
        code = run.stop()
        assert code == 0, run.stderr()[-3000:]
    finally:
        run.close()
        camera.close()


def _port(live: Live, stage: str, index: int = 0) -> int:
    port = metrics_port(live.config, stage, index)
    assert port is not None
    return port


def _push(ctx: zmq.Context[Any], live: Live, hop: str) -> zmq.Socket[Any]:
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 2000)
    sock.connect(f"tcp://127.0.0.1:{bus_port(live.base, hop)}")
    return sock


# --- metrics that alerts can be written on ----------------------------------------------------
def test_every_series_exists_from_the_start(live: Live) -> None:
    for label, samples in live.first_scrape.items():
        name = label.rsplit("-", 1)[0]
        for camera in ("file", "ipcam"):
            for hop in STAGES[name].drop_hops:
                assert value(samples, "facestream_drops_total", camera=camera, hop=hop) is not None, (
                    label,
                    hop,
                )
        for kind in ("bad_payload", "unknown_camera", "unexpected_kind", "implausible_counter"):
            assert value(samples, "facestream_malformed_total", kind=kind) == 0, (label, kind)
        assert value(samples, "facestream_errors_total", kind="detect_failed") == 0, label
        assert value(samples, "facestream_stage_restarts") == 0, label
        assert (value(samples, "process_resident_memory_bytes") or 0) > 10e6, label
        assert value(samples, "process_cpu_seconds_total") is not None, label
        assert (value(samples, "process_start_time_seconds") or 0) > 1.7e9, label
    assert value(live.first_scrape["capture-0"], "facestream_camera_up", camera="file") == 1


# --- one message stops the service -----------------------------------------------------------
def test_a_forged_end_of_stream_does_not_end_the_service(live: Live) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        push = _push(ctx, live, "match_in")
        attack_ns = time.time_ns()
        for camera in ("file", "ipcam"):  # as the reviewer did: a well-formed end for a looping camera
            push.send_multipart(EndOfStream(camera, 0, attack_ns, reason="end of file").to_frames())
        fresh_results(live, "file", 30, attack_ns)
        wait_for(lambda: overlay_lines_after(live, attack_ns) >= 30, 60, "the overlay stopped writing", live)
        print(
            f"overlay wrote 30 frames captured after the forged end within {(time.time_ns() - attack_ns) / 1e9:.1f} s"
        )
    finally:
        ctx.destroy(linger=0)
    assert live.run.alive() and "capture-0" in live.run.stage_pids()


# --- JPEG bombs ------------------------------------------------------------------------------
def _bomb() -> bytes:
    return claiming(jpeg(), 16384, 16384)


def _faces_with(crop: bytes, shape: list[int]) -> list[bytes]:
    """A `faces` message (docs/wire.md) whose one crop is the given JPEG."""
    face = {"box": [10, 10, 50, 50], "score": 0.9, "crop_index": 0}
    return jpeg_message("faces", "file", crop, shape, frame_size=[176, 144], faces=[face])


def test_jpeg_bombs_cost_nothing(live: Live) -> None:
    bomb = _bomb()
    assert len(bomb) < 1000
    pids = live.run.stage_pids()
    peaks = {label: vm_peak_kib(pids[label]) for label in ("embed-0", "match-0")}
    before = {label: scrape(_port(live, label.split("-")[0])) for label in peaks}
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        for hop in ("embed_in", "match_in"):
            push = _push(ctx, live, hop)
            for shape in ([16, 16, 3], [16384, 16384, 3], [480, 640, 3], [16, 16, 3]):
                push.send_multipart(_faces_with(bomb, shape))
        attack_ns = time.time_ns()

        def refused(label: str) -> float:
            now = scrape(_port(live, label.split("-")[0]))
            return total(now, "facestream_malformed_total") - total(
                before[label], "facestream_malformed_total"
            )

        wait_for(lambda: refused("embed-0") >= 4 and refused("match-0") >= 4, 60, "bombs not counted", live)
        fresh_results(live, "file", 20, attack_ns)
    finally:
        ctx.destroy(linger=0)
    for label, peak in peaks.items():
        grown_mib = (vm_peak_kib(pids[label]) - peak) / 1024
        assert grown_mib < 200, f"{label}'s peak memory grew {grown_mib:.0f} MiB"
    embed = scrape(_port(live, "embed"))
    assert (value(embed, "facestream_malformed_total", kind="bad_payload") or 0) >= 3
    assert (value(embed, "facestream_malformed_total", kind="oversize") or 0) >= 1


# --- values from the wire driving counters ----------------------------------------------------
def test_made_up_camera_ids_do_not_grow_the_metrics(live: Live) -> None:
    before = scrape(_port(live, "match"))
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        push = _push(ctx, live, "match_in")
        vectors = np.zeros((0, 128), np.float32)
        for i in range(500):
            forged = Embeddings(f"forged{i}", i, time.time_ns(), frame_size=(1, 1), vectors=vectors)
            push.send_multipart(forged.to_frames())

        def counted() -> float:
            now = scrape(_port(live, "match"))
            return (value(now, "facestream_malformed_total", kind="unknown_camera") or 0) - (
                value(before, "facestream_malformed_total", kind="unknown_camera") or 0
            )

        wait_for(lambda: counted() >= 500, 60, "forged cameras not counted", live)
    finally:
        ctx.destroy(linger=0)
    after = scrape(_port(live, "match"))
    cameras = {dict(labels).get("camera") for (_n, labels) in after} - {None}
    assert cameras == {"file", "ipcam"}
    assert len(after) <= len(before) + 5  # the same series, a few histogram buckets at most


# --- cameras given up for good -----------------------------------------------------------------
def _camera_up(live: Live) -> float | None:
    return value(scrape(_port(live, "capture", 1)), "facestream_camera_up", camera="ipcam")


def test_a_long_outage_is_shown_and_the_camera_comes_back_by_itself(live: Live) -> None:
    pid = live.run.stage_pids()["capture-1"]
    fresh_results(live, "ipcam", 5, time.time_ns())
    live.camera.mode = REFUSED
    attempts = live.camera.requests
    # Far more failed reopens than the 5 that used to end the camera for good.
    wait_for(lambda: live.camera.requests >= attempts + 12, 90, "no retries", live)
    assert _camera_up(live) == 0
    capture = scrape(_port(live, "capture", 1))
    assert (value(capture, "facestream_camera_reopen_attempts_total", camera="ipcam") or 0) >= 12
    wait_for(lambda: mjpeg_status(live)["ipcam"]["state"] == "down", 30, "MJPEG page shows no outage", live)
    assert mjpeg_status(live)["file"]["state"] == "live"
    log = (live.folder / "logs" / "capture-1.log").read_text()
    assert "camera ipcam lost" in log and "down, reopening" in log and "gave up" not in log
    back_ns = time.time_ns()
    live.camera.mode = LIVE
    fresh_results(live, "ipcam", 1, back_ns)
    print(f"first result {(time.time_ns() - back_ns) / 1e9:.2f} s after the camera came back")
    fresh_results(live, "ipcam", 10, back_ns)
    assert _camera_up(live) == 1 and mjpeg_status(live)["ipcam"]["state"] == "live"
    assert live.run.stage_pids()["capture-1"] == pid  # the same process: it never gave up
    assert "camera ipcam up again after" in (live.folder / "logs" / "capture-1.log").read_text()


def test_a_silent_stall_is_detected_within_the_read_timeout(live: Live) -> None:
    fresh_results(live, "ipcam", 5, time.time_ns())
    live.camera.mode = SILENT  # connected, not a byte more
    wait_for(lambda: _camera_up(live) == 0, 60, "the stall was not detected", live)
    detected = time.monotonic()
    assert live.camera.last_frame_at is not None
    stalled_for = detected - live.camera.last_frame_at
    print(f"silent stall detected {stalled_for:.2f} s after the last frame")  # docs/reliability.md
    assert stalled_for < READ_TIMEOUT_S + 2.0, f"detected after {stalled_for:.1f} s"
    back_ns = time.time_ns()
    live.camera.mode = LIVE
    fresh_results(live, "ipcam", 5, back_ns)
