"""`python -m bench.run`: the naive loop vs the pipeline, latency, stage costs and FAISS, in one run.

    python -m bench.run --out bench-results.json            # full: about 3 min on 2 cores
    python -m bench.run --quick --out quick.json            # about 35 s
    python -m bench.run --feeds 1,4,8 --workers 4 --fps 60  # a bigger machine
    python -m bench.run --skip naive,faiss                  # pipeline and the events stage's cost

Results go to --out as JSON and a short table goes to stdout; docs/performance.md explains each
number and how it is measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bus.config import DetectConfig
from bus.errors import FacestreamError
from bus.logs import setup_logging

log = logging.getLogger("facestream.bench")

TARGETS = {
    "pipeline_vs_naive_4_feeds": 3.0,  # at least
    "transport_overhead": 0.20,  # at most
    "p99_latency_ms_1_feed": 150.0,  # below
    "match_ms_1m": 5.0,  # below
    "recall_at_1_1m": 0.99,  # at least
    "events_cost": 0.03,  # at most: throughput the events stage may take from the pipeline
}


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="short run: fewer frames, shorter windows, small galleries"
    )
    p.add_argument("--feeds", type=_ints, default=(1, 4), help="feed counts to run, e.g. 1,4 (default)")
    p.add_argument("--workers", type=int, default=1, help="detect and embed worker processes (default 1)")
    p.add_argument(
        "--fps", type=float, default=30.0, help="frame rate of each feed into the pipeline (default 30)"
    )
    p.add_argument(
        "--window-s", type=float, default=None, help="pipeline measuring window (default 20, quick 4)"
    )
    p.add_argument(
        "--warmup-s",
        type=float,
        default=None,
        help="pipeline warm-up after the first results (default 3, quick 1)",
    )
    p.add_argument(
        "--naive-frames",
        type=int,
        default=None,
        help="frames per feed for the naive loop (default 120, quick 30)",
    )
    p.add_argument(
        "--gallery-sizes",
        type=_ints,
        default=None,
        help="FAISS gallery sizes (default 10000,100000,1000000; quick 10000,30000)",
    )
    p.add_argument(
        "--queries", type=int, default=None, help="FAISS queries per gallery (default 200, quick 50)"
    )
    p.add_argument(
        "--max-hnsw",
        type=int,
        default=100_000,
        help="largest gallery to build HNSW for (default 100000: 1M takes ~6 min on 2 cores)",
    )
    p.add_argument(
        "--faiss-threads", type=int, default=1, help="FAISS OpenMP threads (default 1, as match runs)"
    )
    p.add_argument("--hwm", type=int, default=None, help="bus.hwm of the pipeline (default: the config's, 8)")
    p.add_argument(
        "--no-track", action="store_true", help="pipeline without face tracking (every face embedded)"
    )
    p.add_argument(
        "--skip", default="", help="comma list of sections to skip: naive, pipeline, events, faiss"
    )
    p.add_argument(
        "--events-rounds",
        type=int,
        default=1,
        help="events cost: rounds of 4 pipeline runs (without, with, with, without) on the most feeds",
    )
    p.add_argument("--out", type=Path, default=Path("bench-results.json"), help="JSON results file")
    p.add_argument(
        "--workdir", type=Path, default=None, help="keep the clip, gallery, configs and stage logs here"
    )
    return p


def machine() -> dict[str, Any]:
    import cv2
    import faiss
    import onnxruntime

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem_gb = round(kb / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "load_avg_at_start": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "onnxruntime": onnxruntime.__version__,
        "faiss": faiss.__version__,
    }


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    return {
        "quick": quick,
        "feeds": list(args.feeds),
        "workers": args.workers,
        "fps_per_feed": args.fps,
        "track": not args.no_track,
        "hwm": args.hwm,
        "window_s": args.window_s if args.window_s is not None else (4.0 if quick else 20.0),
        "warmup_s": args.warmup_s if args.warmup_s is not None else (1.0 if quick else 3.0),
        "naive_frames_per_feed": args.naive_frames or (30 if quick else 120),
        "gallery_sizes": list(
            args.gallery_sizes or ((10_000, 30_000) if quick else (10_000, 100_000, 1_000_000))
        ),
        "queries": args.queries or (50 if quick else 200),
        "faiss_threads": args.faiss_threads,
        "max_hnsw": args.max_hnsw,
        "skip": sorted(s.strip() for s in args.skip.split(",") if s.strip()),
        "events_rounds": args.events_rounds,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.compare import compare
    from bench.events import events_cost
    from bench.media import make_clip, make_gallery
    from bench.naive import run_naive, tracking_cost
    from bench.pipeline import run_configured
    from bench.search import bench_size, measure_shape
    from deploy.faces import FaceAnalyzer

    settings = _settings(args)
    unknown = set(settings["skip"]) - {"naive", "pipeline", "events", "faiss"}
    if unknown:
        raise FacestreamError(f"--skip: unknown section(s) {', '.join(sorted(unknown))}")
    started = time.monotonic()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="facestream-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine(), "settings": settings, "workdir": str(workdir)}
    analyzer = FaceAnalyzer()
    clip = make_clip(workdir / "carphone-640x480.mp4")
    gallery = workdir / "gallery.fsg"
    make_gallery(gallery, clip, analyzer)
    report["input"] = {"clip": str(clip), "size": [640, 480], "frames": 120, "gallery_people": 5}

    if "naive" not in settings["skip"]:
        report["naive"] = {}
        for feeds in settings["feeds"]:
            log.info("naive loop, %d feed(s)", feeds)
            report["naive"][str(feeds)] = run_naive(clip, gallery, feeds, settings["naive_frames_per_feed"])
        threads = DetectConfig().threads or None
        log.info("per-part costs with %s OpenCV thread(s), as a detect process runs", threads)
        report["parts"] = run_naive(clip, gallery, 1, settings["naive_frames_per_feed"], cv_threads=threads)
        report["tracking_cost"] = tracking_cost(clip, min(60, settings["naive_frames_per_feed"]))
    if "pipeline" not in settings["skip"]:
        report["pipeline"] = {}
        for feeds in settings["feeds"]:
            log.info(
                "pipeline, %d feed(s), %d worker(s) each for detect and embed", feeds, settings["workers"]
            )
            report["pipeline"][str(feeds)] = run_configured(clip, gallery, feeds, settings, workdir)
    if "events" not in settings["skip"]:
        feeds = max(settings["feeds"])
        log.info("events stage cost, %d feed(s): pipeline without and with it (ABBA)", feeds)
        report["events_cost"] = events_cost(
            clip, gallery, feeds, settings, workdir, settings["events_rounds"]
        )
    if "faiss" not in settings["skip"]:
        shape = measure_shape(analyzer)
        report["faiss_data"] = {
            "impostor_similarity": round(shape.impostor, 4),
            "genuine_similarity": round(shape.genuine, 4),
            "mean_weight": round(shape.mean_weight, 4),
            "noise": round(shape.noise, 4),
        }
        report["faiss"] = []
        for size in settings["gallery_sizes"]:
            log.info("FAISS, gallery of %d", size)
            kinds = (
                ("flat", "sketch", "ivf", "hnsw")
                if size <= settings["max_hnsw"]
                else ("flat", "sketch", "ivf")
            )
            report["faiss"] += bench_size(
                shape,
                size,
                settings["queries"],
                (128, 256, 512),
                (16, 64, 256),
                settings["faiss_threads"],
                analyzer.threshold,
                kinds,  # type: ignore[arg-type]
            )
    report["comparison"] = compare(report)
    report["total_s"] = round(time.monotonic() - started, 1)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("INFO")
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    from bench.table import render

    try:
        report = run(args)
    except FacestreamError as exc:
        log.error("%s", exc)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    sys.stdout.write(render(report) + f"\nJSON: {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
