"""Soak run: the whole pipeline on a looping clip for N minutes, watching memory and lost frames.

    python -m tests.soak.run --minutes 30 [--out DIR] [--report soak.json]

Every stage's resident memory is sampled every few seconds; "start" is taken after a warm-up
(models loaded, caches filled), "end" at the last sample, and a least-squares slope over the
samples after the warm-up says whether memory creeps. Frames lost = frames captured in the
measured window minus results received by a plain subscriber; the per-hop drop counters from
each stage's Prometheus endpoint say where they were lost.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from bus.topology import STAGES
from deploy.assets import carphone_video
from tests.soak.harness import PipelineRun, rss_kib, write_config

log = logging.getLogger("facestream.soak")
SAMPLE_S = 5.0


def _free_base(avoid: tuple[int, ...] = ()) -> int:
    from tests.conftest import free_base_port

    return free_base_port(avoid=avoid)


def _enroll(out: Path) -> Path:
    """The clip's driver from its first frame, with two real photos as distractors."""
    import cv2

    from tests.conftest import PHOTOS, facestream

    gallery = out / "gallery.fsg"
    gallery.unlink(missing_ok=True)
    ok, image = cv2.VideoCapture(str(carphone_video())).read()
    assert ok
    cv2.imwrite(str(out / "driver.png"), image)
    for args in (
        [str(out / "driver.png"), "--name", "driver"],
        [str(PHOTOS / "macron_1.jpg"), str(PHOTOS / "obama_1.jpg")],
    ):
        done = facestream(["enroll", str(gallery), *args, "-q"])
        if done.returncode != 0:
            raise RuntimeError(f"enrollment failed: {done.stderr.strip()}")
    return gallery


def _scrape(port: int) -> dict[str, float]:
    """Sum of each counter family (drops by hop, malformed, messages) from one /metrics page."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(facestream_\w+_total)(\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if not m:
            continue
        name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
        hop = re.search(r'hop="([^"]+)"', labels)
        key = f"{name}[{hop.group(1)}]" if hop else name
        totals[key] = totals.get(key, 0.0) + value
    return totals


def _slope_mib_per_min(times: list[float], kib: list[int]) -> float:
    if len(times) < 3:
        return 0.0
    t = np.asarray(times) / 60.0
    y = np.asarray(kib, dtype=np.float64) / 1024.0
    return float(np.polyfit(t - t[0], y, 1)[0])


def _per_minute(series: list[tuple[float, int]]) -> list[float]:
    """RSS at each whole minute of the run (the first sample at or after it), in MiB."""
    out: list[float] = []
    for t, kib in series:
        if t >= 60.0 * len(out):
            out.append(round(kib / 1024, 1))
    return out


def run_soak(
    minutes: float, out: Path, warmup_s: float | None = None, segment_s: float | None = 60.0
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    duration = minutes * 60.0
    warmup = min(60.0, max(10.0, duration * 0.1)) if warmup_s is None else warmup_s
    gallery = _enroll(out)
    base = _free_base()
    metrics = _free_base(avoid=(base,))
    cameras = [{"id": "cam0", "source": str(carphone_video()), "loop": True}]
    # Short video segments: a long run must roll its MP4 over (its open index grows per frame).
    config = write_config(
        out, gallery, base, cameras=cameras, metrics={"base_port": metrics}, overlay={"segment_s": segment_s}
    )
    run = PipelineRun(config, base).start()
    samples: dict[str, list[tuple[float, int]]] = {}
    seqs: set[int] = set()
    window_seqs: set[int] = set()
    try:
        if run.next_result(180) is None:
            raise RuntimeError(f"the pipeline produced no result:\n{run.stderr()[-3000:]}")
        started = time.monotonic()
        measure_from = started + warmup
        next_sample = started
        pids = {"supervisor": run.pid, **run.stage_pids()}
        while (now := time.monotonic()) < started + duration:
            if not run.alive():
                raise RuntimeError(f"the pipeline stopped:\n{run.stderr()[-3000:]}")
            msg = run.next_message(0.2)
            if msg is not None and msg["kind"] == "result":
                seqs.add(msg["seq"])
                if now >= measure_from:
                    window_seqs.add(msg["seq"])
            if now >= next_sample:
                next_sample += SAMPLE_S
                for label, pid in pids.items():
                    samples.setdefault(label, []).append((now - started, rss_kib(pid)))
        counters = {f"{name}-0": _scrape(metrics + spec.metrics_offset) for name, spec in STAGES.items()}
        current = run.stage_pids()
        code = run.stop()
    finally:
        run.close()
    restarts = [ln for ln in run.stderr().splitlines() if " died (" in ln]
    memory: dict[str, Any] = {}
    total_start = total_end = 0
    for label, series in samples.items():
        measured = [(t, k) for t, k in series if t >= warmup] or series[-1:]
        start_kib, end_kib = measured[0][1], measured[-1][1]
        total_start, total_end = total_start + start_kib, total_end + end_kib
        memory[label] = {
            "start_mib": round(start_kib / 1024, 1),
            "end_mib": round(end_kib / 1024, 1),
            "max_mib": round(max(k for _, k in measured) / 1024, 1),
            "slope_mib_per_min": round(
                _slope_mib_per_min([t for t, _ in measured], [k for _, k in measured]), 3
            ),
            "per_minute_mib": _per_minute(series),
        }
    captured = (max(window_seqs) - min(window_seqs) + 1) if window_seqs else 0
    summary_path = out / "results.summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    drops = {
        f"{label}:{key.split('[', 1)[1][:-1]}": int(v)
        for label, c in counters.items()
        for key, v in c.items()
        if key.startswith("facestream_drops_total[")
    }
    report = {
        "minutes": minutes,
        "warmup_s": warmup,
        "exit_code": code,
        "stage_restarts": len(restarts),
        "same_pids_at_end": current == {k: v for k, v in pids.items() if k != "supervisor"},
        "memory": memory,
        "memory_total": {
            "start_mib": round(total_start / 1024, 1),
            "end_mib": round(total_end / 1024, 1),
            "growth_mib": round((total_end - total_start) / 1024, 1),
        },
        "frames": {
            "captured_in_window": captured,
            "results_in_window": len(window_seqs),
            "lost_in_window": captured - len(window_seqs),
            "lost_fraction": round((captured - len(window_seqs)) / captured, 4) if captured else math.nan,
            "results_total": len(seqs),
            "drops_by_hop": drops,
            "malformed": {
                label: int(c.get("facestream_malformed_total", 0)) for label, c in counters.items()
            },
            "overlay_frames": summary.get("frames"),
            "overlay_stale_frames": summary.get("stale_frames"),
            "overlay_missing_frames": summary.get("per_camera", {}).get("cam0", {}).get("missing_frames"),
            "overlay_segments": len(summary.get("per_camera", {}).get("cam0", {}).get("segments", [])),
        },
    }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak.run", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument(
        "--segment-s", type=float, default=60.0, help="overlay.segment_s, seconds of video per MP4 file"
    )
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temp folder)")
    parser.add_argument("--report", type=Path, default=None, help="also write the report here (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = args.out or Path(tempfile.mkdtemp(prefix="facestream-soak-"))
    log.info("soak: %.1f minutes in %s", args.minutes, out)
    report = run_soak(args.minutes, out, segment_s=args.segment_s)
    text = json.dumps(report, indent=2)
    if args.report is not None:
        args.report.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0 if report["exit_code"] == 0 and report["stage_restarts"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
