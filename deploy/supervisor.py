"""Start every stage as its own process, restart crashed ones within a budget, stop them cleanly.

A stage that exits with EXIT_USER_ERROR is not restarted: its message is the service's answer.
A crashed stage is restarted after a back-off that doubles per restart (`supervisor.backoff_s`,
capped at `max_backoff_s`); more than `max_restarts` crashes of one stage within `window_s`
stop the whole service with a message naming the stage and its last error.

Each child learns from its environment that it was restarted (FACESTREAM_RESTARTS) and where it
may keep state across restarts (FACESTREAM_STATE_DIR): a camera continues its frame numbering and
its file position, the overlay starts a new video segment instead of overwriting its file.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bus.config import PipelineConfig
from bus.errors import FacestreamError
from deploy.stage_main import EXIT_USER_ERROR
from deploy.stages import START_ORDER, process_count

log = logging.getLogger("facestream.supervisor")

ENV_RESTARTS = "FACESTREAM_RESTARTS"  # how many times this stage process was restarted (0: first start)
ENV_STATE_DIR = "FACESTREAM_STATE_DIR"  # a folder that outlives one stage process (the run dir)
_LOG_LINE = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+) ")
# Run first in every stage process (Linux): ask the kernel for SIGTERM when the supervisor dies,
# even by kill -9, so that no stage outlives it; then become the stage. A supervisor that died
# before the request took effect is seen as a changed parent pid.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(0)\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


@dataclass
class StageProcess:
    name: str
    index: int
    ready_file: Path
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)  # restart times within the window
    total_restarts: int = 0
    finished: bool = False  # exited 0 on purpose (a camera's end of stream, the sink's end)
    next_start: float = 0.0
    reader: threading.Thread | None = None
    last_error: str = ""  # the last ERROR log line (or traceback line) of the current process

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


def _forward(stage: StageProcess, stream: IO[bytes], sink: IO[bytes]) -> None:
    """Copy a stage's output to its log file or the terminal, remembering its last error."""
    in_traceback = False
    for line in iter(stream.readline, b""):
        try:
            sink.write(line)
            sink.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not take the supervisor down
        text = line.strip()
        match = _LOG_LINE.match(text)
        if match is not None:
            in_traceback = False
            if match.group(1) in (b"ERROR", b"CRITICAL"):
                stage.last_error = text.decode(errors="replace").split(": ", 1)[-1]
        elif text.startswith(b"Traceback (most recent call last)"):
            in_traceback = True
        elif in_traceback and text and not line.startswith((b" ", b"\t")):
            stage.last_error = text.decode(errors="replace")  # e.g. "ValueError: ..." ends a traceback
    stream.close()


class Supervisor:
    def __init__(
        self,
        config: PipelineConfig,
        config_path: Path,
        run_dir: Path,
        *,
        owns_run_dir: bool = False,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        """`owns_run_dir`: the run dir is a private folder made for this run (see `owns_run_dir()`);
        it is removed once `run()` has stopped every stage. A configured folder is never removed.
        `on_started` is called once every stage has started (e.g. to print the console's URL)."""
        self.on_started = on_started
        self.config = config
        self.config_path = Path(config_path).resolve()
        self.run_dir = Path(run_dir)
        self.owns_run_dir = owns_run_dir
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
            "-m", "deploy.cli", "stage", stage.name,
            "--config", str(self.config_path), "--index", str(stage.index),
            "--ready-file", str(stage.ready_file),
        ]  # fmt: skip
        if sys.platform.startswith("linux"):
            cmd = [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), *cmd]
        else:
            cmd = [sys.executable, *cmd]
        env = {**os.environ, ENV_RESTARTS: str(stage.total_restarts), ENV_STATE_DIR: str(self.run_dir)}
        sink: IO[bytes] = sys.stderr.buffer
        log_dir = self.config.supervisor.log_dir
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            if stage.log_file is None:
                stage.log_file = open(log_dir / f"{stage.label}.log", "ab")  # noqa: SIM115
            sink = stage.log_file
        stage.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        stage.last_error = ""
        assert stage.proc.stdout is not None
        stage.reader = threading.Thread(
            target=_forward, args=(stage, stage.proc.stdout, sink), daemon=True, name=f"log-{stage.label}"
        )
        stage.reader.start()
        stage.finished = False
        if stage.total_restarts:
            log.warning(
                "restarted %s (pid %d, restart %d)", stage.label, stage.proc.pid, stage.total_restarts
            )
        else:
            log.info("started %s (pid %d)", stage.label, stage.proc.pid)

    def _last_error(self, stage: StageProcess) -> str:
        """The stage's last error line, once its output has been read to the end."""
        if stage.reader is not None:
            stage.reader.join(2.0)
        return stage.last_error

    def _wait_ready(self, group: list[StageProcess]) -> None:
        deadline = time.monotonic() + self.config.supervisor.ready_timeout_s
        pending = list(group)
        while pending:
            for stage in list(pending):
                if stage.ready_file.exists():
                    pending.remove(stage)
                elif stage.proc is not None and stage.proc.poll() is not None:
                    code = stage.proc.returncode
                    error = self._last_error(stage)
                    raise FacestreamError(
                        f"stage {stage.label} failed to start ({describe_exit(code)})"
                        + (f": {error}" if error else "")
                    )
            if time.monotonic() > deadline:
                names = ", ".join(s.label for s in pending)
                raise FacestreamError(
                    f"stages not ready after {self.config.supervisor.ready_timeout_s:g} s: {names}"
                )
            time.sleep(0.05)

    def start(self) -> None:
        """Start consumers first and wait until they listen, then the cameras."""
        for stale in self.run_dir.glob("*.state"):
            stale.unlink(missing_ok=True)  # a previous run's camera positions
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
            if stage.reader is not None:
                stage.reader.join(2.0)
                stage.reader = None
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
            error = self._last_error(stage)
            if code == EXIT_USER_ERROR:
                self.last_error = f"stage {stage.label} stopped: {error or describe_exit(code)}"
                return EXIT_USER_ERROR
            cfg = self.config.supervisor
            if not self._may_restart(stage, now):
                self.last_error = (
                    f"stage {stage.label} died {len(stage.restarts) + 1} times within {cfg.window_s:g} s "
                    f"(last: {describe_exit(code)}{'; ' + error if error else ''}); the restart budget "
                    f"is supervisor.max_restarts={cfg.max_restarts} per window_s={cfg.window_s:g} s; "
                    "stopping the service"
                )
                log.error("%s", self.last_error)
                return 1
            delay = min(cfg.max_backoff_s, cfg.backoff_s * (2 ** len(stage.restarts)))
            stage.restarts.append(now)
            stage.total_restarts += 1
            log.warning(
                "%s died (%s%s); restarting in %.1f s (%d of %d restarts allowed within %g s)",
                stage.label,
                describe_exit(code),
                f": {error}" if error else "",
                delay,
                len(stage.restarts),
                cfg.max_restarts,
                cfg.window_s,
            )
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
            if self.on_started is not None:
                self.on_started()
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
            if self.owns_run_dir:
                self._remove_run_dir()

    def _remove_run_dir(self) -> None:
        """Remove the private run dir (ready and *.state files); only after every stage has stopped."""
        try:
            shutil.rmtree(self.run_dir)
        except OSError as exc:  # never fail a finished run over its scratch folder
            log.debug("cannot remove the run dir %s: %s", self.run_dir, exc)

    def pids(self) -> dict[str, int]:
        return {s.label: s.proc.pid for s in self.stages if s.proc is not None and s.proc.poll() is None}


def _configured_run_dir(config: PipelineConfig) -> Path | None:
    return config.bus.ipc_dir if config.bus.transport == "ipc" and config.bus.ipc_dir else None


def default_run_dir(config: PipelineConfig) -> Path:
    base = _configured_run_dir(config)
    return Path(base) if base else Path(os.environ.get("TMPDIR", "/tmp")) / f"facestream-run-{os.getpid()}"


def owns_run_dir(config: PipelineConfig) -> bool:
    """True when `default_run_dir` is the per-pid folder facestream makes itself (tcp transport),
    which the supervisor removes at the end; False for a user's bus.ipc_dir, which it leaves."""
    return _configured_run_dir(config) is None
