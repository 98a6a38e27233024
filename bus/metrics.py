"""Prometheus metrics of one stage process, in its own registry (no global state).

Every labelled series that alerts may be written on exists from the start at zero (`prime`):
per configured camera, per hop this stage may drop on, per fault and failure kind. The process's
memory, CPU time and start time come with it (`process_*`), and how often the supervisor
restarted it (`facestream_stage_restarts`).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

from bus.errors import Failure, Fault

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class StageMetrics:
    """Counters every stage keeps; labelled by camera so a bad feed shows up on its own."""

    def __init__(self, stage: str, index: int) -> None:
        self.registry = CollectorRegistry()
        labels = {"stage": stage, "worker": str(index)}
        self.stage = stage
        self._labels = labels
        reg = self.registry
        self.messages_in = Counter(
            "facestream_messages_in",
            "Messages received",
            ["stage", "worker", "camera"],
            registry=reg,
        )
        self.messages_out = Counter(
            "facestream_messages_out", "Messages sent", ["stage", "worker", "camera"], registry=reg
        )
        self.drops = Counter(
            "facestream_drops",
            "Messages dropped (drop-oldest or full queue)",
            ["stage", "worker", "camera", "hop"],
            registry=reg,
        )
        self.malformed = Counter(
            "facestream_malformed",
            "Messages rejected as malformed (kind: bus.errors.Fault)",
            ["stage", "worker", "kind"],
            registry=reg,
        )
        self.errors = Counter(
            "facestream_errors",
            "Valid messages this stage failed to process (kind: bus.errors.Failure)",
            ["stage", "worker", "kind"],
            registry=reg,
        )
        self.latency = Histogram(
            "facestream_stage_seconds",
            "Compute time of this stage per message",
            ["stage", "worker", "camera"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.end_to_end = Histogram(
            "facestream_capture_to_here_seconds",
            "Time from capture to the end of this stage",
            ["stage", "worker", "camera"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.queue_depth = Gauge(
            "facestream_queue_depth",
            "Messages waiting when this stage last read its input",
            ["stage", "worker"],
            registry=reg,
        )
        self.camera_depth = Gauge(
            "facestream_camera_queue_depth",
            "Messages of one camera waiting when this stage last read its input",
            ["stage", "worker", "camera"],
            registry=reg,
        )
        self.up = Gauge("facestream_up", "1 while the stage loop runs", ["stage", "worker"], registry=reg)
        self.restarts = Gauge(
            "facestream_stage_restarts",
            "How often the supervisor restarted this stage process (FACESTREAM_RESTARTS)",
            ["stage", "worker"],
            registry=reg,
        )
        ProcessCollector(registry=reg)  # process_resident_memory_bytes, process_cpu_seconds_total, ...

    def prime(self, cameras: Iterable[str], drop_hops: Iterable[str], restarts: int = 0) -> None:
        """Create every series at zero, so that `rate()` and absence alerts work from the start."""
        labels = self._labels
        hops = list(drop_hops)
        for camera in cameras:
            for counter in (self.messages_in, self.messages_out):
                counter.labels(**labels, camera=camera)
            for hop in hops:
                self.drops.labels(**labels, camera=camera, hop=hop)
            for histogram in (self.latency, self.end_to_end):
                histogram.labels(**labels, camera=camera)
            self.camera_depth.labels(**labels, camera=camera)
        for fault in Fault:
            self.malformed.labels(**labels, kind=fault.value)
        for failure in Failure:
            self.errors.labels(**labels, kind=failure.value)
        self.queue_depth.labels(**labels)
        self.up.labels(**labels)
        self.restarts.labels(**labels).set(restarts)

    def inc_in(self, camera: str, n: int = 1) -> None:
        self.messages_in.labels(**self._labels, camera=camera).inc(n)

    def inc_out(self, camera: str, n: int = 1) -> None:
        self.messages_out.labels(**self._labels, camera=camera).inc(n)

    def drop(self, camera: str, hop: str, n: int = 1) -> None:
        self.drops.labels(**self._labels, camera=camera, hop=hop).inc(n)

    def bad(self, kind: Fault) -> None:
        self.malformed.labels(**self._labels, kind=kind.value).inc()

    def failed(self, kind: Failure) -> None:
        self.errors.labels(**self._labels, kind=kind.value).inc()

    def observe(self, camera: str, seconds: float, since_capture: float | None = None) -> None:
        self.latency.labels(**self._labels, camera=camera).observe(seconds)
        if since_capture is not None:
            self.end_to_end.labels(**self._labels, camera=camera).observe(max(0.0, since_capture))

    def set_depth(self, depth: int) -> None:
        self.queue_depth.labels(**self._labels).set(depth)

    def set_camera_depth(self, camera: str, depth: int) -> None:
        self.camera_depth.labels(**self._labels, camera=camera).set(depth)

    def set_up(self, value: bool) -> None:
        self.up.labels(**self._labels).set(1 if value else 0)

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def drop_report(self) -> str:
        """'; dropped: 3 on capture->detect (cam0), ...' for the log at the end; '' when none."""
        parts = []
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == "facestream_drops_total" and sample.value > 0:
                    parts.append(f"{int(sample.value)} on {sample.labels['hop']} ({sample.labels['camera']})")
        return "; dropped: " + ", ".join(parts) if parts else ""

    def total(self, name: str) -> float:
        """Sum of one counter over all labels (tests and summaries)."""
        value = 0.0
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == f"{name}_total":
                    value += sample.value
        return value
