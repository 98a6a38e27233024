"""Run the real multi-process pipeline on cameras of the bench's clips and measure it from outside.

The pipeline is started by the same supervisor as `facestream run` (every stage its own
process, the overlay included); the bench itself is a results client (a SUB on match's
results, like any consumer of docs/wire.md). It reads each process's /metrics (stage compute,
detect's frames by mode, drops per hop) and its CPU time from /proc at the start and end of a
measuring window, so no number comes from inside the code under test alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from prometheus_client.parser import text_string_to_metric_families

from bus.config import dump_config, parse_config
from bus.errors import FacestreamError
from bus.records import MatchResult, record_from_message
from bus.topology import STAGES, endpoint, metrics_port
from bus.wire import decode
from deploy.ports import free_port_block
from deploy.supervisor import Supervisor

log = logging.getLogger("facestream.bench")

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_metrics_base(feeds: int, workers: int) -> int:
    """A base port whose /metrics ports for this run (every stage process) are all free."""
    per = {"capture": feeds, "detect": workers, "embed": workers, "match": 1, "overlay": 1, "events": 1}
    return free_port_block(STAGES[name].metrics_offset + i for name, n in per.items() for i in range(n))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (its threads included) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def scrape(port: int) -> list[tuple[str, dict[str, str], float]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return []
    return [
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


@dataclass
class Snapshot:
    at: int  # time.time_ns()
    cpu: dict[str, float]
    samples: dict[str, list[tuple[str, dict[str, str], float]]]


def _sum(snap: Snapshot, name: str, stage: str | None = None, **labels: str) -> float:
    total = 0.0
    for label, samples in snap.samples.items():
        if stage is not None and not label.startswith(stage + "-"):
            continue
        for sample, lab, value in samples:
            if sample == name and all(lab.get(k) == v for k, v in labels.items()):
                total += value
    return total


def _drops(snap: Snapshot) -> dict[tuple[str, str, str], float]:
    """(stage, hop, camera) -> drops so far."""
    out: dict[tuple[str, str, str], float] = {}
    for samples in snap.samples.values():
        for sample, lab, value in samples:
            if sample == "facestream_drops_total":
                key = (lab.get("stage", ""), lab.get("hop", ""), lab.get("camera", ""))
                out[key] = out.get(key, 0.0) + value
    return out


@dataclass
class Sink:
    """The results client: what arrived, when."""

    results: list[tuple[int, MatchResult]] = field(default_factory=list)  # (arrival ns, result)

    def window(self, start_ns: int, end_ns: int) -> list[tuple[int, MatchResult]]:
        return [(t, r) for t, r in self.results if start_ns <= t < end_ns]


class PipelineBench:
    """The pipeline as `facestream run` starts it (deploy.supervisor), measured from outside."""

    def __init__(
        self,
        cameras: list[dict[str, Any]],
        gallery: Path,
        workers: int,
        workdir: Path,
        label: str,
        hwm: int | None = None,
        detect: dict[str, Any] | None = None,
        events: bool = False,
    ) -> None:
        self.cameras, self.gallery, self.workers, self.hwm = cameras, gallery, workers, hwm
        self.workdir, self.label, self.events = workdir, label, events
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.ipc_dir = Path(tempfile.mkdtemp(prefix="fsb-"))  # ipc paths must stay short
        self.config = parse_config(
            {
                "cameras": cameras,
                "bus": {"transport": "ipc", "ipc_dir": str(self.ipc_dir)}
                | ({} if hwm is None else {"hwm": hwm}),
                "detect": {"workers": workers} | (detect or {}),
                "embed": {"workers": workers},
                "match": {"gallery": str(gallery)},
                "metrics": {"base_port": free_metrics_base(len(cameras), workers)},
                "supervisor": {"log_dir": str(workdir / f"logs-{label}"), "max_restarts": 0},
            }
            | ({"events": {"data_dir": tempfile.mkdtemp(prefix="events-", dir=workdir)}} if events else {}),
            "bench config",
        )
        self.config_path = workdir / f"pipeline-{label}.yaml"
        dump_config(self.config, self.config_path)
        self.supervisor = Supervisor(self.config, self.config_path, self.ipc_dir / "run")
        self.results = self.ctx.socket(zmq.SUB)

    @property
    def offered_fps(self) -> float:
        return sum(float(c.get("fps") or 0.0) for c in self.cameras)

    def start(self) -> None:
        self.results.setsockopt(zmq.SUBSCRIBE, b"")
        self.results.setsockopt(zmq.RCVHWM, 100_000)
        self.results.connect(endpoint(self.config.bus, "results").connect)
        self.supervisor.start()  # consumers first (the overlay subscribes to every camera), then cameras

    def stop(self) -> None:
        self.supervisor.stop()
        self.ctx.destroy(linger=0)
        shutil.rmtree(self.ipc_dir, ignore_errors=True)

    # --- measuring ------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        pids = self.supervisor.pids()
        samples = {}
        for label in pids:
            name, index = label.rsplit("-", 1)
            port = metrics_port(self.config, name, int(index))
            samples[label] = [] if port is None else scrape(port)
        return Snapshot(
            at=time.time_ns(), cpu={label: cpu_seconds(pid) for label, pid in pids.items()}, samples=samples
        )

    def _pump(self, sink: Sink, until: float) -> None:
        poller = zmq.Poller()
        poller.register(self.results, zmq.POLLIN)
        while time.monotonic() < until:
            if not poller.poll(50):
                continue
            while True:
                try:
                    frames = self.results.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                arrived = time.time_ns()
                record = record_from_message(decode(frames))
                if isinstance(record, MatchResult):
                    sink.results.append((arrived, record))
            if self.supervisor.check() is not None:
                raise FacestreamError(
                    f"bench: the pipeline stopped: {self.supervisor.last_error or 'see its logs'}"
                )

    def measure(self, warmup_s: float, window_s: float, keep: list[Any] | None = None) -> dict[str, Any]:
        """Summary of a measuring window; `keep` gets the window's (arrival ns, result) pairs."""
        sink = Sink()
        deadline = time.monotonic() + 120
        while {r.camera_id for _, r in sink.results} != {c.id for c in self.config.cameras}:
            if time.monotonic() > deadline:
                raise FacestreamError("bench: not every camera produced a result within 120 s")
            self._pump(sink, time.monotonic() + 0.2)
        self._pump(sink, time.monotonic() + warmup_s)
        first = self.snapshot()
        self._pump(sink, time.monotonic() + window_s)
        last = self.snapshot()
        window = sink.window(first.at, last.at)
        if keep is not None:
            keep.extend(window)
        return summarize(self, window, first, last)


def _pct(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.asarray(values, np.float64)
    out = {f"p{q}": round(float(np.percentile(arr, q)), 2) for q in (50, 95, 99)}
    out["max"] = round(float(arr.max()), 2)
    return out


def change_labelled(first: Snapshot, last: Snapshot, name: str, stage: str, **labels: str) -> float:
    return _sum(last, name, stage, **labels) - _sum(first, name, stage, **labels)


def summarize(
    bench: PipelineBench, window: list[tuple[int, MatchResult]], first: Snapshot, last: Snapshot
) -> dict[str, Any]:
    seconds = (last.at - first.at) / 1e9
    delivered = len(window)
    latencies = [(t - r.ts_ns) / 1e6 for t, r in window]
    faces = [f for _, r in window for f in r.faces]
    crops = sum(1 for f in faces if f.crop_index is not None)

    def change(name: str, stage: str) -> float:
        return _sum(last, name, stage) - _sum(first, name, stage)

    stage_ms: dict[str, float | None] = {}
    for stage in ("detect", "embed", "match", "capture", "overlay"):
        count = change("facestream_stage_seconds_count", stage)
        spent = change("facestream_stage_seconds_sum", stage)
        stage_ms[stage] = round(spent / count * 1000, 3) if count else None
    captured = change("facestream_stage_seconds_count", "capture")
    detected = change("facestream_stage_seconds_count", "detect")
    drops_before, drops_after = _drops(first), _drops(last)
    drops: dict[str, float] = {}
    per_camera: dict[str, dict[str, float]] = {}
    for (where, hop, camera), value in drops_after.items():
        lost = value - drops_before.get((where, hop, camera), 0.0)
        if lost <= 0:
            continue
        name = f"{hop} (at {where})"
        drops[name] = drops.get(name, 0.0) + lost
        per_camera.setdefault(camera, {})[name] = per_camera.get(camera, {}).get(name, 0.0) + lost
    cpu = {label: round(last.cpu.get(label, 0.0) - first.cpu.get(label, 0.0), 3) for label in last.cpu}
    by_stage: dict[str, float] = {}
    for label, seconds_used in cpu.items():
        kind = label.rsplit("-", 1)[0]
        by_stage[kind] = round(by_stage.get(kind, 0.0) + seconds_used, 3)
    # What recognition costs: every stage but the overlay, which is the viewer (reported apart).
    total_cpu = sum(v for k, v in by_stage.items() if k != "overlay")
    names = Counter(f.name for f in faces)
    naming = Counter(name for _, r in window for name in {f.name for f in r.faces if f.name})
    modes = {
        mode: int(change_labelled(first, last, "facestream_detect_frames_total", "detect", mode=mode))
        for mode in ("full", "follow", "still")
    }
    per_camera_fps = Counter(r.camera_id for _, r in window)
    return {
        "feeds": len(bench.cameras),
        "workers": bench.workers,
        "track": bench.config.detect.track,
        "motion": bench.config.detect.motion,
        "hwm": bench.config.bus.hwm,
        "offered_fps": round(bench.offered_fps, 2),
        "detect_modes": modes,
        "full_detections_per_frame": round(modes["full"] / max(1, sum(modes.values())), 4),
        "camera_fps": {c: round(n / seconds, 2) for c, n in sorted(per_camera_fps.items())}
        if seconds > 0
        else {},
        "window_s": round(seconds, 3),
        "results": delivered,
        "fps": round(delivered / seconds, 2) if seconds > 0 else 0.0,
        "captured_frames": int(captured),
        "detected_frames": int(detected),
        "latency_ms": _pct(latencies),
        "faces_per_result": round(len(faces) / delivered, 3) if delivered else 0.0,
        "crops_per_result": round(crops / delivered, 4) if delivered else 0.0,
        "stage_ms_per_message": stage_ms,
        "drops": {k: int(v) for k, v in sorted(drops.items())},
        "drops_per_camera": {
            c: {k: int(v) for k, v in sorted(d.items())} for c, d in sorted(per_camera.items())
        },
        "cpu_s": by_stage,
        "cpu_s_total": round(total_cpu, 3),  # without the overlay
        "cpu_ms_per_frame": round(total_cpu / captured * 1000, 3) if captured else None,
        "cpu_ms_per_result": round(total_cpu / delivered * 1000, 3) if delivered else None,
        "names": dict(names.most_common()),  # faces per name
        "results_naming": dict(naming.most_common()),  # results with at least one face of that name
    }


def run_pipeline(
    cameras: list[dict[str, Any]],
    gallery: Path,
    workers: int,
    warmup_s: float,
    window_s: float,
    workdir: Path,
    label: str,
    hwm: int | None = None,
    detect: dict[str, Any] | None = None,
    keep: list[Any] | None = None,
    events: bool = False,
) -> dict[str, Any]:
    """Start the pipeline on these cameras, measure one window, stop it; `keep` gets the window's results."""
    bench = PipelineBench(cameras, gallery, workers, workdir, label, hwm, detect, events)
    try:
        bench.start()
        result = bench.measure(warmup_s, window_s, keep)
    finally:
        bench.stop()
    (workdir / f"pipeline-{label}.json").write_text(json.dumps(result, indent=1))
    return result


def looping(source: Path, count: int, fps: float, prefix: str = "cam", **camera: Any) -> list[dict[str, Any]]:
    """`count` cameras replaying one video in real time at `fps`."""
    return [
        {"id": f"{prefix}{i}", "source": str(source), "realtime": True, "fps": fps, "loop": True, **camera}
        for i in range(count)
    ]
