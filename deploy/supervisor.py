"""Start every stage as its own process, restart crashed ones within a budget, stop them cleanly.

A stage that exits with EXIT_USER_ERROR is not restarted: its message is the service's answer.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bus.config import PipelineConfig
from bus.errors import FacestreamError
from deploy.stage_main import EXIT_USER_ERROR
from deploy.stages import START_ORDER, process_count

log = logging.getLogger("facestream.supervisor")


@dataclass
class StageProcess:
    name: str
    index: int
    ready_file: Path
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)
    finished: bool = False  # exited 0 on purpose (a camera's end of stream, the sink's end)
    next_start: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.name}-{self.index}"


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    def __init__(self, config: PipelineConfig, config_path: Path, run_dir: Path) -> None:
        self.config = config
        self.config_path = Path(config_path).resolve()
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.stages: list[StageProcess] = [
            StageProcess(name, i, self.run_dir / f"{name}-{i}.ready")
            for name in START_ORDER
            for i in range(process_count(config, name))
        ]
        self._stopping = False
        self.last_error: str | None = None

    # --- processes ----------------------------------------------------------------------
    def _spawn(self, stage: StageProcess) -> None:
        stage.ready_file.unlink(missing_ok=True)
        cmd = [
            sys.executable, "-m", "deploy.cli", "stage", stage.name,
            "--config", str(self.config_path), "--index", str(stage.index),
            "--ready-file", str(stage.ready_file),
        ]  # fmt: skip
        out: IO[bytes] | int | None = None
        log_dir = self.config.supervisor.log_dir
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            if stage.log_file is None:
                stage.log_file = open(log_dir / f"{stage.label}.log", "ab")  # noqa: SIM115
            out = stage.log_file
        stage.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None)
        stage.finished = False
        log.info("started %s (pid %d)", stage.label, stage.proc.pid)

    def _wait_ready(self, group: list[StageProcess]) -> None:
        deadline = time.monotonic() + self.config.supervisor.ready_timeout_s
        pending = list(group)
        while pending:
            for stage in list(pending):
                if stage.ready_file.exists():
                    pending.remove(stage)
                elif stage.proc is not None and stage.proc.poll() is not None:
                    code = stage.proc.returncode
                    raise FacestreamError(
                        f"stage {stage.label} failed to start ({describe_exit(code)})" + self._log_hint(stage)
                    )
            if time.monotonic() > deadline:
                names = ", ".join(s.label for s in pending)
                raise FacestreamError(
                    f"stages not ready after {self.config.supervisor.ready_timeout_s:g} s: {names}"
                )
            time.sleep(0.05)

    def _log_hint(self, stage: StageProcess) -> str:
        log_dir = self.config.supervisor.log_dir
        if log_dir is None:
            return ""
        path = log_dir / f"{stage.label}.log"
        try:
            lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        errors = [ln for ln in lines if " ERROR " in ln]
        tail = (errors or lines)[-1:] if lines else []
        return (": " + tail[0].split(": ", 1)[-1]) if tail else f" (see {path})"

    def start(self) -> None:
        """Start consumers first and wait until they listen, then the cameras."""
        consumers = [s for s in self.stages if s.name != "capture"]
        for stage in consumers:
            self._spawn(stage)
        self._wait_ready(consumers)
        for stage in self.stages:
            if stage.name == "capture":
                self._spawn(stage)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        running = [s for s in self.stages if s.proc is not None and s.proc.poll() is None]
        for stage in running:
            assert stage.proc is not None
            stage.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for stage in running:
            assert stage.proc is not None
            try:
                stage.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %g s; killing it", stage.label, timeout_s)
                stage.proc.kill()
                stage.proc.wait()
        for stage in self.stages:
            if stage.log_file is not None:
                stage.log_file.close()
                stage.log_file = None
            stage.ready_file.unlink(missing_ok=True)

    # --- supervision ----------------------------------------------------------------------
    def _may_restart(self, stage: StageProcess, now: float) -> bool:
        cfg = self.config.supervisor
        while stage.restarts and now - stage.restarts[0] > cfg.window_s:
            stage.restarts.popleft()
        return len(stage.restarts) < cfg.max_restarts

    def check(self) -> int | None:
        """One supervision step; returns an exit code once the service is over."""
        now = time.monotonic()
        for stage in self.stages:
            proc = stage.proc
            if proc is None:
                if not stage.finished and now >= stage.next_start:
                    self._spawn(stage)
                continue
            code = proc.poll()
            if code is None or stage.finished:
                continue
            if code == 0 and stage.name in ("capture", "overlay"):
                stage.finished = True
                log.info("%s finished", stage.label)
                if stage.name == "overlay":
                    return 0
                continue
            if code == EXIT_USER_ERROR:
                self.last_error = f"stage {stage.label} stopped: " + self._log_hint(stage).lstrip(": ")
                return EXIT_USER_ERROR
            cfg = self.config.supervisor
            if not self._may_restart(stage, now):
                self.last_error = (
                    f"stage {stage.label} died {len(stage.restarts) + 1} times within "
                    f"{cfg.window_s:g} s ({describe_exit(code)}); stopping the service"
                )
                return 1
            delay = min(cfg.max_backoff_s, cfg.backoff_s * (2 ** len(stage.restarts)))
            stage.restarts.append(now)
            log.warning("%s died (%s); restarting in %.1f s", stage.label, describe_exit(code), delay)
            stage.proc = None
            stage.next_start = now + delay
        return None

    def run(self, poll_s: float = 0.1) -> int:
        """Start, supervise until the sink ends or SIGTERM/SIGINT, stop; return the exit code."""

        def _terminate(*_: object) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            self.start()
            while True:
                code = self.check()
                if code is not None:
                    return code
                time.sleep(poll_s)
        except KeyboardInterrupt:
            log.info("stopping on request")
            return 0
        finally:
            self.stop()
            signal.signal(signal.SIGTERM, previous)

    def pids(self) -> dict[str, int]:
        return {s.label: s.proc.pid for s in self.stages if s.proc is not None and s.proc.poll() is None}


def default_run_dir(config: PipelineConfig) -> Path:
    base = config.bus.ipc_dir if config.bus.transport == "ipc" and config.bus.ipc_dir else None
    return Path(base) if base else Path(os.environ.get("TMPDIR", "/tmp")) / f"facestream-run-{os.getpid()}"
