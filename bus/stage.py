"""The life of a stage process: on_start, a poll loop calling process and tick, finish, on_stop.

Every stage has this one lifecycle. Its state is born in __init__; only the models and sockets
that on_start opens are declared on the class and assigned there, and whatever on_stop releases
starts as None in __init__ (so on_stop needs no guards when on_start failed half-way). The loop
here reads each input (counting its depth, in total and per camera) and calls tick; a stage that
ends by itself sets stop_event. finish() sends the last messages after the loop ended (not after
an error); on_stop always runs.

Malformed messages are dropped, counted by kind (bus.errors.Fault) and logged once per kind;
valid messages that fail to process are counted apart (bus.errors.Failure); the loop goes on.
A message of a kind this stage never reads, or of a camera that is not in the config, is refused
from its header, before its payload is decoded. `exit_reason` says why the stage ended.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import zmq

from bus.config import PipelineConfig
from bus.errors import ExitReason, Failure, WireError
from bus.metrics import StageMetrics
from bus.records import Record, record_from_message
from bus.sockets import drain, make_socket
from bus.topology import STAGES, metrics_port, restart_count
from bus.wire import decode


class Stage(ABC):
    name: ClassVar[str] = "stage"
    poll_ms: ClassVar[int] = 100
    # Seconds a stage stopped by a signal has to end (the supervisor itself kills after 5 s).
    stop_deadline_s: ClassVar[float] = 10.0

    def __init__(self, config: PipelineConfig, index: int = 0, ready_file: Path | None = None) -> None:
        self.config = config
        self.index = index
        self.ready_file = ready_file
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.metrics = StageMetrics(self.name, index)
        self.log = logging.getLogger(f"facestream.{self.name}.{index}")
        self.stop_event = threading.Event()
        self.inputs: list[zmq.Socket[Any]] = []
        self._faults_seen: set[str] = set()
        spec = STAGES.get(self.name)
        self.accepts: frozenset[str] | None = None if spec is None else spec.accepts
        self.camera_ids = frozenset(c.id for c in config.cameras)
        self.metrics.prime(self.camera_ids, () if spec is None else spec.drop_hops, restart_count())
        # FINISHED unless a signal stopped it; stages with other endings (a lost camera) set it.
        self.exit_reason = ExitReason.FINISHED
        self.exit_detail = ""  # a line for the exit file (e.g. which camera was lost)

    # --- to implement -------------------------------------------------------------------
    @abstractmethod
    def on_start(self) -> None:
        """Open models and sockets; append input sockets to self.inputs."""

    def process(self, record: Record, source: zmq.Socket[Any]) -> None:  # noqa: B027
        """Handle one valid record (stages that read inputs override this or process_batch)."""

    def process_batch(self, records: list[Record], source: zmq.Socket[Any]) -> None:
        """Everything waiting on one socket, oldest first; the default handles them in order."""
        for record in records:
            self.process(record, source)

    def tick(self) -> None:  # noqa: B027
        """Called after every poll (with or without input): timers, sources, flushing."""

    def finish(self) -> None:  # noqa: B027
        """The loop ended (by itself or on request, not by an error): last messages out."""

    def on_stop(self) -> None:  # noqa: B027
        """Release resources, also after a failed on_start; sockets are closed by the context afterwards."""

    # --- shared machinery -----------------------------------------------------------------
    def socket(self, kind: int, **kwargs: Any) -> zmq.Socket[Any]:
        return make_socket(self.ctx, kind, self.config.bus, **kwargs)

    def reject(self, err: WireError) -> None:
        self.metrics.bad(err.kind)
        if err.kind not in self._faults_seen:
            self._faults_seen.add(err.kind)
            self.log.warning("dropped a malformed message (%s); further ones are only counted", err)

    def failed(self, kind: Failure, detail: str) -> None:
        """A valid message this stage could not process: counted apart from malformed ones."""
        self.metrics.failed(kind)
        if kind not in self._faults_seen:
            self._faults_seen.add(kind)
            self.log.warning(
                "could not process a message (%s: %s); further ones are only counted", kind, detail
            )

    def read(self, sock: zmq.Socket[Any], first: list[zmq.Frame] | None = None) -> list[Record]:
        """Everything waiting on `sock` (after `first`, if given), decoded; the depth it had, in
        total and per camera, goes to the metrics (nothing is counted when nothing waited)."""
        batch = drain(sock, first)
        if not batch:
            return []
        self.metrics.set_depth(len(batch))
        records = self.decode_all(batch)
        for camera, count in Counter(r.camera_id for r in records).items():
            self.metrics.set_camera_depth(camera, count)
        return records

    def decode_all(self, batch: list[list[zmq.Frame]]) -> list[Record]:
        records: list[Record] = []
        for frames in batch:
            try:
                records.append(record_from_message(decode(frames, self.accepts, self.camera_ids)))
            except WireError as err:
                self.reject(err)
        return records

    def request_stop(self, *_: Any) -> None:
        """Stop on request (a signal, the supervisor, a test): the stage ends as STOPPED, unless
        it had already ended by itself."""
        if not self.stop_event.is_set():
            self.exit_reason = ExitReason.STOPPED
        self.stop_event.set()

    def _stop_on_signal(self, *_: Any) -> None:
        """A signal's stop also arms a deadline. When the supervisor died (kill -9: the kernel's
        parent-death SIGTERM), nothing else would end a stop that hangs in a native library or
        in the interpreter's exit; faulthandler's watchdog needs no GIL: it writes every thread's
        stack to the log, then ends the process."""
        faulthandler.dump_traceback_later(self.stop_deadline_s, exit=True)
        self.request_stop()

    def run(self) -> None:
        """Run until SIGTERM/SIGINT or request_stop(); always calls on_stop."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._stop_on_signal)
            signal.signal(signal.SIGINT, self._stop_on_signal)
        try:
            self._serve_metrics()
            self.on_start()
            self.metrics.set_up(True)
            if self.ready_file is not None:
                self.ready_file.touch()
            self.log.info("started")
            self.loop()
            self.finish()
        finally:
            self.metrics.set_up(False)
            try:
                self.on_stop()
            finally:
                self.ctx.destroy(linger=0)
                self.log.info("stopped")

    def loop(self) -> None:
        """Poll the inputs until stop_event; a stage without inputs is paced by its tick()."""
        poller = zmq.Poller()
        for sock in self.inputs:
            poller.register(sock, zmq.POLLIN)
        while not self.stop_event.is_set():
            ready = dict(poller.poll(self.poll_ms)) if self.inputs else {}
            if not self.inputs and self.poll_ms:
                self.stop_event.wait(self.poll_ms / 1000)
            for sock in self.inputs:
                if sock in ready:
                    records = self.read(sock, sock.recv_multipart(copy=False))
                    if records:
                        self.process_batch(records, sock)
            self.tick()

    def _serve_metrics(self) -> None:
        port = metrics_port(self.config, self.name, self.index)
        if port is not None:
            self.metrics.serve(self.config.metrics.host, port)
            self.log.info("metrics on http://%s:%d/metrics", self.config.metrics.host, port)


def since_capture_s(record: Record) -> float:
    return (time.time_ns() - record.ts_ns) / 1e9
