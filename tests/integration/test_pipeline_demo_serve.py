"""`facestream demo --serve`: the clips loop, the console comes up at the printed URL, Ctrl-C stops."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from deploy.ports import free_port
from tests.conftest import REPO


def _get(url: str) -> Any:
    try:
        return httpx.get(url, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return None


def test_demo_serve_loops_the_clips_and_serves_the_console(tmp_path: Path) -> None:
    port = free_port()
    errors = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deploy.cli",
            "demo",
            "--serve",
            "--out",
            str(tmp_path / "demo"),
            "--web-port",
            str(port),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        assert lines.get(timeout=300).strip() == f"console: {url}/ (the clips loop; Ctrl-C stops)"
        assert httpx.get(url + "/", timeout=5).text.startswith("<!doctype html>")
        deadline = time.monotonic() + 180
        looped = named = False
        while time.monotonic() < deadline and not (looped and named):
            cams = {c["id"]: c for c in _get(url + "/api/cameras") or []}
            looped = (cams.get("carphone", {}).get("last_seq") or 0) > 140  # the clip has 120 frames
            events = _get(url + "/api/events?name=carphone_driver&limit=5") or {"items": []}
            named = any(e["snapshot_url"] for e in events["items"])
            time.sleep(1)
        assert looped and named, (cams, events)
        health = _get(url + "/api/health")
        assert health["status"] == "ok" and all(s["up"] for s in health["stages"]), health
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            errors.close()
    reader.join(10)
    assert proc.returncode == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert any(line.startswith("demo: ") for line in rest), rest
