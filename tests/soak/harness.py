"""Drive a real `facestream run` from outside, as an operator would: start it, find its stage
processes, read results with plain pyzmq, measure memory. Shared by the soak run and the
reliability integration tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
import zmq

from bus.topology import bus_port
from deploy.assets import carphone_video

REPO = Path(__file__).resolve().parents[2]


def write_config(
    folder: Path,
    gallery: Path,
    base_port: int,
    cameras: list[dict[str, Any]] | None = None,
    **sections: dict[str, Any],
) -> Path:
    """A tcp pipeline config on `base_port`; `sections` are merged over the defaults below."""
    config: dict[str, Any] = {
        "cameras": cameras or [{"id": "cam0", "source": str(carphone_video()), "loop": True}],
        "bus": {"transport": "tcp", "host": "127.0.0.1", "base_port": base_port},
        "detect": {"workers": 1},
        "embed": {"workers": 1},
        "match": {"gallery": str(gallery)},
        "overlay": {"output": str(folder / "out.mp4"), "results_log": str(folder / "results.jsonl")},
        "supervisor": {"log_dir": str(folder / "logs")},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def curve_client(sock: zmq.Socket[Any], keys: Path, client: str = "client") -> None:
    """Make `sock` a CURVE client with keys written by `facestream keys`."""
    import zmq.auth

    public, secret = zmq.auth.load_certificate(str(keys / f"{client}.key_secret"))
    assert secret is not None
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.curve_serverkey = zmq.auth.load_certificate(str(keys / "server.key"))[0]


class PipelineRun:
    """`facestream run CONFIG` in a child process, with a results subscriber on the side."""

    def __init__(self, config: Path, base_port: int, curve_keys: Path | None = None) -> None:
        self.config = config
        self.base_port = base_port
        self.stderr_path = config.parent / "run.stderr"
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.sub: zmq.Socket[Any] = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 100_000)
        if curve_keys is not None:
            curve_client(self.sub, curve_keys)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(f"tcp://127.0.0.1:{bus_port(base_port, 'results')}")
        self.proc: subprocess.Popen[bytes] | None = None
        self.results = 0

    def start(self, env: Mapping[str, str] | None = None) -> PipelineRun:
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "run", str(self.config)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env={**os.environ, **(env or {})},
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stage_pids(self) -> dict[str, int]:
        """{"detect-0": pid, ...} from the run process's children and their command lines."""
        found: dict[str, int] = {}
        try:
            tasks = list(Path(f"/proc/{self.pid}/task").iterdir())
        except OSError:
            return found
        for task in tasks:
            try:
                kids = (task / "children").read_text().split()
            except OSError:
                continue
            for kid in kids:
                try:
                    argv = Path(f"/proc/{kid}/cmdline").read_bytes().decode().split("\0")
                except OSError:
                    continue
                if "stage" in argv and "--index" in argv:
                    name = argv[argv.index("stage") + 1]
                    found[f"{name}-{argv[argv.index('--index') + 1]}"] = int(kid)
        return found

    def wait_for_stage(self, label: str, timeout: float, not_pid: int | None = None) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.stage_pids().get(label)
            if pid is not None and pid != not_pid:
                return pid
            assert self.alive(), f"the pipeline stopped:\n{self.stderr()[-3000:]}"
            time.sleep(0.05)
        raise AssertionError(f"no {label} process after {timeout} s")

    def next_message(self, timeout: float) -> dict[str, Any] | None:
        """The next header published on the results socket (results and ends of stream)."""
        if not self.sub.poll(int(timeout * 1000)):
            return None
        _topic, header, *_parts = self.sub.recv_multipart()
        msg: dict[str, Any] = json.loads(header)
        if msg.get("kind") == "result":
            self.results += 1
        return msg

    def next_result(self, timeout: float, captured_after_ns: int = 0) -> dict[str, Any] | None:
        """The next result of a frame captured after `captured_after_ns` (time.time_ns())."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = self.next_message(left)
            if msg is not None and msg["kind"] == "result" and msg["ts_ns"] > captured_after_ns:
                return msg
        return None

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM the run (if still running) and return its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._stderr.close()
        return code

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if hasattr(self, "_stderr") and not self._stderr.closed:
            self._stderr.close()
        self.ctx.destroy(linger=0)


def rss_kib(pid: int) -> int:
    """Resident memory of one process (VmRSS), in KiB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
