"""`python -m bench.run`: the naive loop vs the pipeline, latency, stage costs and FAISS, in one run.

    python -m bench.run --out bench-results.json            # full: about 7.5 min on 2 cores
    python -m bench.run --quick --out quick.json            # about 2.5 min
    python -m bench.run --feeds 1,4,8 --workers 4 --fps 60  # a bigger machine
    python -m bench.run --skip naive,faiss                  # pipeline and the events stage's cost

Results go to --out as JSON and a short table goes to stdout; docs/performance.md explains each
number and how it is measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.machine import machine
from bus.config import DetectConfig
from bus.errors import FacestreamError
from bus.logs import setup_logging

log = logging.getLogger("facestream.bench")

SCENE_FPS = 15.0
MANY_FEEDS = 16  # 12 still (6 empty rooms, 6 people at desks) + 4 with motion (2 walking, 2 crowds)


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
        "--skip",
        default="",
        help="comma list of sections to skip: naive, pipeline, scenes, many, events, faiss",
    )
    p.add_argument("--scene-feeds", type=int, default=4, help="feeds of each scene in the scenes section")
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
        "scene_feeds": args.scene_feeds,
        "events_rounds": args.events_rounds,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.compare import compare
    from bench.events import events_cost
    from bench.media import make_clip, make_gallery
    from bench.naive import detect_costs, run_naive
    from bench.pipeline import looping, run_pipeline
    from bench.search import bench_size, measure_shape
    from faces.analyzer import FaceAnalyzer

    settings = _settings(args)
    unknown = set(settings["skip"]) - {"naive", "pipeline", "scenes", "many", "events", "faiss"}
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
    window = (settings["warmup_s"], settings["window_s"])
    workers, hwm = settings["workers"], settings["hwm"]
    track = {} if settings["track"] else {"track": False}

    if "naive" not in settings["skip"]:
        report["naive"] = {}
        for feeds in settings["feeds"]:
            log.info("naive loop, %d feed(s)", feeds)
            report["naive"][str(feeds)] = run_naive(clip, gallery, feeds, settings["naive_frames_per_feed"])
        threads = DetectConfig().threads or None
        log.info("per-part costs with %s OpenCV thread(s), as a detect process runs", threads)
        report["parts"] = run_naive(clip, gallery, 1, settings["naive_frames_per_feed"], cv_threads=threads)
        report["detect_costs"] = detect_costs(clip, 120)
    if "pipeline" not in settings["skip"]:
        report["pipeline"] = {}
        for feeds in settings["feeds"]:
            log.info("pipeline, %d carphone feed(s), %d worker(s) each for detect and embed", feeds, workers)
            cams = looping(clip, feeds, settings["fps_per_feed"])
            result = run_pipeline(cams, gallery, workers, *window, workdir, f"{feeds}feeds", hwm, track)
            result["driver_named"] = _named_share(result, "carphone_driver")
            report["pipeline"][str(feeds)] = result
    if "scenes" not in settings["skip"] or "many" not in settings["skip"]:
        from bench.scenes import prepare as prepare_scenes

        scenes = prepare_scenes(workdir, analyzer.detector)
        if "scenes" not in settings["skip"]:
            report["scenes"] = run_scenes(scenes, gallery, settings, workdir)
        if "many" not in settings["skip"]:
            report["many"] = run_many(scenes, gallery, settings, workdir)
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


def _named_share(result: dict[str, Any], name: str) -> float | None:
    """Share of results that show `name` (the carphone driver is in every frame of the clip)."""
    total = result["results"]
    return round(result["results_naming"].get(name, 0) / total, 4) if total else None


def run_scenes(
    scenes: dict[str, Any], gallery: Path, settings: dict[str, Any], workdir: Path
) -> dict[str, Any]:
    """Each scene on its own, `scene_feeds` feeds of it at 15 fps. Then one empty room twice, as
    it is and with a detection on every frame (motion gating off): one feed, so that the machine
    keeps up with both and the budget thins neither; the still room's CPU per frame over the
    detected one's is the price of a still camera."""
    from bench.pipeline import looping, run_pipeline
    from bench.scenes import agreement

    out: dict[str, Any] = {}
    window = (settings["warmup_s"], settings["window_s"])
    feeds = settings["scene_feeds"]
    runs: list[tuple[str, str, int, dict[str, Any]]] = [(name, name, feeds, {}) for name in scenes]
    runs += [("empty", "empty-1", 1, {}), ("empty", "empty-1-detected", 1, {"motion": False})]
    for scene_name, label, count, detect in runs:
        scene = scenes[scene_name]
        note = " (detect every frame)" if detect else ""
        log.info("scene %s: %d feed(s) at %g fps%s", label, count, SCENE_FPS, note)
        cams = looping(scene.video, count, SCENE_FPS, prefix=f"{scene_name}-")
        windowed: list[Any] = []
        result = run_pipeline(
            cams,
            gallery,
            settings["workers"],
            *window,
            workdir,
            f"scene-{label}",
            settings["hwm"],
            detect,
            windowed,
        )
        result.update(agreement(scene, windowed))
        out[label] = result
    still, detected = out["empty-1"].get("cpu_ms_per_frame"), out["empty-1-detected"].get("cpu_ms_per_frame")
    if still and detected:
        out["still_vs_detected"] = round(still / detected, 4)
    return out


def run_many(
    scenes: dict[str, Any], gallery: Path, settings: dict[str, Any], workdir: Path
) -> dict[str, Any]:
    """16 cameras at 15 fps on 2 cores: 12 still scenes and 4 with motion, all at once."""
    from bench.pipeline import looping, run_pipeline
    from bench.scenes import agreement

    mix = [("empty", 6), ("still", 6), ("walking", 2), ("crowd6", 2)]
    cams = [
        cam for name, count in mix for cam in looping(scenes[name].video, count, SCENE_FPS, prefix=f"{name}-")
    ]
    log.info("%d cameras at %g fps: %s", len(cams), SCENE_FPS, ", ".join(f"{n} {name}" for name, n in mix))
    windowed: list[Any] = []
    window = (settings["warmup_s"], settings["window_s"])
    result = run_pipeline(
        cams, gallery, settings["workers"], *window, workdir, "many", settings["hwm"], None, windowed
    )
    result["scenes"] = {
        name: agreement(scenes[name], [(t, r) for t, r in windowed if r.camera_id.startswith(f"{name}-")])
        for name, _ in mix
    }
    return result


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
