"""`facestream run` over TCP on free ports, read by a plain pyzmq client that follows docs/wire.md."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
import zmq

from bus.topology import bus_port
from deploy.assets import carphone_video
from tests.conftest import REPO, facestream, free_base_port


def _write_config(tmp_path: Path, gallery: Path, base: int, **camera: object) -> Path:
    config = {
        "cameras": [{"id": "cam0", "source": str(carphone_video()), **camera}],
        "bus": {"transport": "tcp", "host": "127.0.0.1", "base_port": base},
        "detect": {"workers": 2},
        "embed": {"workers": 2},
        "match": {"gallery": str(gallery)},
        "overlay": {"output": str(tmp_path / "out.mp4"), "results_log": str(tmp_path / "results.jsonl")},
        "supervisor": {"log_dir": str(tmp_path / "logs")},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _plain_subscriber(base: int) -> zmq.Socket[bytes]:
    sub: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.SUB)
    sub.connect(f"tcp://127.0.0.1:{bus_port(base, 'results')}")
    sub.setsockopt(zmq.SUBSCRIBE, b"cam0")
    return sub


def test_run_labels_enrolled_driver_for_a_plain_zmq_client(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "gallery.fsg"
    frame0 = tmp_path / "driver.png"
    import cv2

    ok, image = cv2.VideoCapture(str(carphone_video())).read()
    assert ok
    cv2.imwrite(str(frame0), image)
    enrolled = facestream(["enroll", str(gallery), str(frame0), "--name", "driver", "-q"])
    assert enrolled.returncode == 0, enrolled.stderr
    distractors = facestream(
        ["enroll", str(gallery), str(photos / "macron_1.jpg"), str(photos / "obama_1.jpg"), "-q"]
    )
    assert distractors.returncode == 0, distractors.stderr

    base = free_base_port()
    config = _write_config(tmp_path, gallery, base)
    sub = _plain_subscriber(base)
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "run", str(config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    names: list[str] = []
    try:
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if dict(poller.poll(200)).get(sub):
                topic, header, *_parts = sub.recv_multipart()
                msg = json.loads(header)
                assert msg["schema_version"] == 1 and topic == b"cam0\0"  # docs/wire.md: id + NUL
                if msg["kind"] == "result":
                    names += [f["name"] for f in msg["faces"]]
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
    assert proc.returncode == 0, err[-3000:]
    assert len(names) >= 40, f"only {len(names)} faces reached the plain client"
    assert names.count("driver") / len(names) >= 0.8, names
    assert (tmp_path / "out.mp4").exists() and (tmp_path / "results.jsonl").exists()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def test_sigterm_stops_every_stage_process(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "gallery.fsg"
    assert facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    base = free_base_port()
    config = _write_config(tmp_path, gallery, base, loop=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "run", str(config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        children: list[int] = []
        while time.monotonic() < deadline and len(children) < 7:  # overlay, match, 2 embed, 2 detect, capture
            time.sleep(0.5)
            children = _children(proc.pid)
            assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert len(children) == 7, children
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    for pid in children:
        assert (
            not os.path.exists(f"/proc/{pid}") or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )
