"""Run the real multi-process pipeline on N copies of a clip and measure it from outside.

Every stage is its own `facestream stage` process, as `facestream run` starts them; the bench
itself is the results client (a SUB on match's results, like any consumer of docs/wire.md). It
reads each process's /metrics (stage compute, drops per hop) and its CPU time from /proc at the
start and end of a measuring window, so no number comes from inside the code under test alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import zmq
from prometheus_client.parser import text_string_to_metric_families

from bus.config import PipelineConfig, dump_config, parse_config
from bus.errors import FacestreamError
from bus.records import MatchResult, record_from_message
from bus.topology import STAGES, all_endpoints, endpoint
from bus.wire import decode

log = logging.getLogger("facestream.bench")

REPO = Path(__file__).resolve().parents[1]
NO_FRAMES_TOPIC = b"\x00bench"  # a subscription that matches no camera: capture sees a subscriber
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    name: str
    index: int
    popen: subprocess.Popen[bytes]
    ready: Path
    log: IO[bytes]
    port: int

    @property
    def label(self) -> str:
        return f"{self.name}-{self.index}"


def free_metrics_base(feeds: int, workers: int) -> int:
    """A base port whose /metrics ports for this run (capture, detect, embed, match) are all free."""
    counts = {"capture": feeds, "detect": workers, "embed": workers, "match": 1}
    offsets = [STAGES[name].metrics_offset + i for name, count in counts.items() for i in range(count)]
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + max(offsets) >= 65000:
            continue
        try:
            for offset in offsets:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise FacestreamError("no free block of ports for the stages' /metrics")


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
    def __init__(
        self,
        clip: Path,
        gallery: Path,
        feeds: int,
        workers: int,
        fps: float,
        track: bool,
        workdir: Path,
        hwm: int | None = None,
    ) -> None:
        self.clip, self.gallery, self.feeds, self.workers = clip, gallery, feeds, workers
        self.fps, self.track, self.hwm = fps, track, hwm
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.ipc_dir = Path(tempfile.mkdtemp(prefix="fsb-"))  # ipc paths must stay short
        self.base = free_metrics_base(feeds, workers)
        self.config = self._config()
        self.config_path = workdir / f"pipeline-{feeds}feeds.yaml"
        dump_config(self.config, self.config_path)

    def _config(self) -> PipelineConfig:
        return parse_config(
            {
                "cameras": [
                    {
                        "id": f"cam{i}",
                        "source": str(self.clip),
                        "realtime": True,
                        "fps": self.fps,
                        "loop": True,
                    }
                    for i in range(self.feeds)
                ],
                "bus": {"transport": "ipc", "ipc_dir": str(self.ipc_dir)}
                | ({} if self.hwm is None else {"hwm": self.hwm}),
                "detect": {"workers": self.workers, "track": self.track},
                "embed": {"workers": self.workers},
                "match": {"gallery": str(self.gallery)},
                "metrics": {"base_port": self.base},
            },
            "bench config",
        )

    # --- processes ------------------------------------------------------------------------
    def _spawn(self, name: str, index: int) -> Proc:
        ready = self.ipc_dir / f"{name}-{index}.ready"
        logfile = open(self.workdir / f"{name}-{index}-{self.feeds}feeds.log", "wb")  # noqa: SIM115
        cmd = [
            sys.executable, "-m", "deploy.cli", "stage", name, "--config", str(self.config_path),
            "--index", str(index), "--ready-file", str(ready),
        ]  # fmt: skip
        popen = subprocess.Popen(cmd, cwd=REPO, stdout=logfile, stderr=subprocess.STDOUT)
        proc = Proc(name, index, popen, ready, logfile, self.base + STAGES[name].metrics_offset + index)
        self.procs.append(proc)
        return proc

    def _wait_ready(self, procs: list[Proc], timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        for proc in procs:
            while not proc.ready.exists():
                if proc.popen.poll() is not None:
                    raise FacestreamError(
                        f"bench: {proc.label} exited ({proc.popen.returncode}); see its log"
                    )
                if time.monotonic() > deadline:
                    raise FacestreamError(f"bench: {proc.label} not ready after {timeout_s:g} s")
                time.sleep(0.05)

    def start(self) -> None:
        consumers = [self._spawn("match", 0)]
        consumers += [self._spawn("embed", i) for i in range(self.workers)]
        consumers += [self._spawn("detect", i) for i in range(self.workers)]
        self._wait_ready(consumers)
        self.results = self.ctx.socket(zmq.SUB)
        self.results.setsockopt(zmq.SUBSCRIBE, b"")
        self.results.setsockopt(zmq.RCVHWM, 100_000)
        self.results.connect(endpoint(self.config.bus, "results").connect)
        self.frames = self.ctx.socket(zmq.SUB)  # only so that each capture sees a subscriber
        self.frames.setsockopt(zmq.SUBSCRIBE, NO_FRAMES_TOPIC)
        for e in all_endpoints(self.config, "frames"):
            self.frames.connect(e.connect)
        time.sleep(0.3)  # the subscription reaches match's PUB
        self._wait_ready([self._spawn("capture", i) for i in range(self.feeds)])

    def stop(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.popen.wait(10)
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()
            proc.log.close()
        self.ctx.destroy(linger=0)
        shutil.rmtree(self.ipc_dir, ignore_errors=True)

    # --- measuring ------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        return Snapshot(
            at=time.time_ns(),
            cpu={p.label: cpu_seconds(p.popen.pid) for p in self.procs},
            samples={p.label: scrape(p.port) for p in self.procs},
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
            for proc in self.procs:
                if proc.popen.poll() is not None:
                    raise FacestreamError(f"bench: {proc.label} died ({proc.popen.returncode}); see its log")

    def measure(self, warmup_s: float, window_s: float) -> dict[str, Any]:
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
        return summarize(self, sink.window(first.at, last.at), first, last)


def _pct(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.asarray(values, np.float64)
    out = {f"p{q}": round(float(np.percentile(arr, q)), 2) for q in (50, 95, 99)}
    out["max"] = round(float(arr.max()), 2)
    return out


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
    for stage in ("detect", "embed", "match", "capture"):
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
    total_cpu = sum(cpu.values())
    names = Counter(f.name for f in faces)
    return {
        "feeds": bench.feeds,
        "workers": bench.workers,
        "track": bench.track,
        "hwm": bench.config.bus.hwm,
        "offered_fps": round(bench.feeds * bench.fps, 2),
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
        "cpu_s_total": round(total_cpu, 3),
        "cpu_ms_per_result": round(total_cpu / delivered * 1000, 3) if delivered else None,
        "names": dict(names.most_common()),
    }


def run_pipeline(
    clip: Path,
    gallery: Path,
    feeds: int,
    workers: int,
    fps: float,
    track: bool,
    warmup_s: float,
    window_s: float,
    workdir: Path,
    hwm: int | None = None,
) -> dict[str, Any]:
    bench = PipelineBench(clip, gallery, feeds, workers, fps, track, workdir, hwm)
    try:
        bench.start()
        result = bench.measure(warmup_s, window_s)
    finally:
        bench.stop()
    (workdir / f"pipeline-{feeds}feeds.json").write_text(json.dumps(result, indent=1))
    return result
