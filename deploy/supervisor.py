"""Start every stage as its own process, restart crashed ones within a budget, stop them cleanly.

Each stage process says why it ended in its exit file (deploy/stage_main.py: finished, stopped,
camera_lost, user_error, crashed); the supervisor reads that, never the stage's log lines.
A stage that ends with user_error is not restarted: its message is the service's answer.
A camera's end (finished, or camera_lost after its configured retries) is final. The service
ends cleanly when the sink (bus.topology: `ends_service`) finishes and every camera has ended
(within SINK_GRACE_S: a camera may still be closing); a sink whose cameras still run after that
ended on a peer's word alone (a forged end of stream) and is started again, without using up the
restart budget.
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
from bus.errors import EXIT_CODES, ExitReason, FacestreamError
from bus.topology import ENV_RESTARTS, ENV_STATE_DIR, STAGES, START_ORDER, process_count
from deploy.stage_main import EXIT_USER_ERROR, StageExit

log = logging.getLogger("facestream.supervisor")
# A camera that sent its end of stream may still be closing (socket linger, exit file) when the sink
# has finished: the sink's end is believed if every camera has ended within this time.
SINK_GRACE_S = 10.0
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
    exit_file: Path
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)  # restart times within the window
    total_restarts: int = 0
    early_ends: int = 0  # times a sink ended while cameras still ran (restarted outside the budget)
    ended_at: float | None = None  # when a sink finished while cameras still ran (the grace starts)
    finished: bool = False  # ended for good (a camera's end), not to be started again
    lost: bool = False  # a camera stage that gave up on its camera (max_retries)
    next_start: float = 0.0
    reader: threading.Thread | None = None

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


def forward_log(stream: IO[bytes], sink: IO[bytes]) -> None:
    """Copy a stage's output to its log file or the terminal (only copied, never interpreted)."""
    for line in iter(stream.readline, b""):
        try:
            sink.write(line)
            sink.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not take the supervisor down
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
            StageProcess(name, i, self.run_dir / f"{name}-{i}.ready", self.run_dir / f"{name}-{i}.exit")
            for name in START_ORDER
            for i in range(process_count(config, name))
        ]
        self._stopping = False
        self.last_error: str | None = None

    # --- processes ----------------------------------------------------------------------
    def _spawn(self, stage: StageProcess) -> None:
        stage.ready_file.unlink(missing_ok=True)
        stage.exit_file.unlink(missing_ok=True)
        cmd = [
            "-m", "deploy.cli", "stage", stage.name,
            "--config", str(self.config_path), "--index", str(stage.index),
            "--ready-file", str(stage.ready_file), "--exit-file", str(stage.exit_file),
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
        assert stage.proc.stdout is not None
        stage.reader = threading.Thread(
            target=forward_log, args=(stage.proc.stdout, sink), daemon=True, name=f"log-{stage.label}"
        )
        stage.reader.start()
        stage.finished = False
        if stage.total_restarts:
            log.warning(
                "restarted %s (pid %d, restart %d)", stage.label, stage.proc.pid, stage.total_restarts
            )
        else:
            log.info("started %s (pid %d)", stage.label, stage.proc.pid)

    @staticmethod
    def _exit_of(stage: StageProcess) -> StageExit | None:
        """Why the stage's process ended, from its exit file (None: killed before it could say)."""
        return StageExit.read(stage.exit_file)

    def _wait_ready(self, group: list[StageProcess]) -> None:
        deadline = time.monotonic() + self.config.supervisor.ready_timeout_s
        pending = list(group)
        while pending:
            for stage in list(pending):
                if stage.ready_file.exists():
                    pending.remove(stage)
                elif stage.proc is not None and stage.proc.poll() is not None:
                    code = stage.proc.returncode
                    ended = self._exit_of(stage)
                    error = "" if ended is None else ended.detail
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
        consumers = [s for s in self.stages if not STAGES[s.name].source]
        for stage in consumers:
            self._spawn(stage)
        self._wait_ready(consumers)
        for stage in self.stages:
            if STAGES[stage.name].source:
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
        # Cameras first: one that ended in this round counts as ended when the sink is looked at.
        for stage in sorted(self.stages, key=lambda s: not STAGES[s.name].source):
            proc = stage.proc
            if proc is None:
                if not stage.finished and now >= stage.next_start:
                    self._spawn(stage)
                continue
            code = proc.poll()
            if code is None or stage.finished:
                continue
            ended = self._exit_of(stage)
            reason = None if ended is None else ended.reason
            spec = STAGES[stage.name]
            if reason == ExitReason.USER_ERROR:
                assert ended is not None
                self.last_error = f"stage {stage.label} stopped: {ended.detail or describe_exit(code)}"
                return EXIT_USER_ERROR
            if spec.source and reason in (ExitReason.FINISHED, ExitReason.CAMERA_LOST):
                stage.finished = True
                if reason == ExitReason.CAMERA_LOST:
                    stage.lost = True
                    log.warning("%s gave up on its camera (%s)", stage.label, ended.detail if ended else "")
                else:
                    log.info("%s finished", stage.label)
                continue
            if spec.ends_service and reason == ExitReason.FINISHED:
                running = [s.label for s in self.stages if STAGES[s.name].source and not s.finished]
                if not running:
                    log.info("%s finished", stage.label)
                    lost = [s.label for s in self.stages if s.lost]
                    if lost:  # a service whose cameras were given up on did not end well: let
                        # restart policies (systemd on-failure, Kubernetes) see it
                        self.last_error = f"gave up on the camera of {', '.join(lost)} (camera.max_retries)"
                        return EXIT_CODES[ExitReason.CAMERA_LOST]
                    return 0
                if stage.ended_at is None:
                    stage.ended_at = now  # the cameras may be closing: give them SINK_GRACE_S
                elif now - stage.ended_at >= SINK_GRACE_S:
                    self._restart_early_end(stage, running, now)
                continue
            if not self._restart_crashed(stage, code, "" if ended is None else ended.detail, now):
                return 1
        return None

    def _restart_early_end(self, stage: StageProcess, running: list[str], now: float) -> None:
        """A sink that finished while cameras still run SINK_GRACE_S later was told so by a peer, not
        by the cameras: start it again (a forged end of stream must not end the service, nor use up
        its restart budget)."""
        cfg = self.config.supervisor
        delay = min(cfg.max_backoff_s, cfg.backoff_s * (2 ** min(stage.early_ends, 16)))
        stage.early_ends += 1
        stage.ended_at = None
        stage.total_restarts += 1
        log.warning(
            "%s ended although %s still run%s %.0f s later (an end of stream that no camera sent?); "
            "starting it again in %.1f s",
            stage.label,
            ", ".join(running),
            "s" if len(running) == 1 else "",
            SINK_GRACE_S,
            delay,
        )
        stage.proc = None
        stage.next_start = now + delay

    def _restart_crashed(self, stage: StageProcess, code: int, error: str, now: float) -> bool:
        """Schedule a restart after a back-off; False once the restart budget is spent."""
        cfg = self.config.supervisor
        if not self._may_restart(stage, now):
            self.last_error = (
                f"stage {stage.label} died {len(stage.restarts) + 1} times within {cfg.window_s:g} s "
                f"(last: {describe_exit(code)}{'; ' + error if error else ''}); the restart budget "
                f"is supervisor.max_restarts={cfg.max_restarts} per window_s={cfg.window_s:g} s; "
                "stopping the service"
            )
            log.error("%s", self.last_error)
            return False
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
        return True

    def run(self, poll_s: float = 0.1) -> int:
        """Start, supervise until the sink ends or SIGTERM/SIGINT, stop; return the exit code."""

        def _terminate(*_: object) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, _terminate)
        # Also when started as a background job (`facestream run &` in a script), where the
        # shell leaves SIGINT ignored: an interrupt sent to the service means stop.
        previous_int = signal.signal(signal.SIGINT, _terminate)
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
            signal.signal(signal.SIGINT, previous_int)
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
