"""The loop the original notebooks ran: read a frame, detect, embed every face, match; one process.

With several feeds it takes one frame from each in turn. Each part is timed (wall and CPU), so
the same numbers give each stage's own compute per frame, without any transport.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bus.config import DetectConfig
from bus.errors import FacestreamError
from bus.records import Frame
from detect.factory import make_detector
from embed.model import EmbeddingModel
from match.gallery import Gallery

PARTS = ("decode", "detect", "embed", "match")


@dataclass
class Clock:
    """Wall and CPU seconds spent in each part."""

    wall: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTS, 0.0))
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTS, 0.0))

    def add(self, part: str, wall0: float, cpu0: float) -> None:
        self.wall[part] += time.perf_counter() - wall0
        self.cpu[part] += time.process_time() - cpu0


class Feed:
    """One looping video reader."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cap = cv2.VideoCapture(str(path))

    def read(self) -> np.ndarray:
        ok, frame = self.cap.read()
        if not ok:
            self.cap.release()
            self.cap = cv2.VideoCapture(str(self.path))
            ok, frame = self.cap.read()
            if not ok:
                raise FacestreamError(f"cannot read {self.path}")
        return frame

    def close(self) -> None:
        self.cap.release()


def _percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {f"p{q}": round(float(np.percentile(arr, q)), 2) for q in (50, 95, 99)} | {
        "max": round(float(arr.max()), 2)
    }


def run_naive(
    clip: Path,
    gallery_path: Path,
    feeds: int,
    frames_per_feed: int,
    detect: DetectConfig | None = None,
    cv_threads: int | None = None,
) -> dict[str, Any]:
    """Frames/s of the naive loop over `feeds` copies of the clip, and its per-part costs.

    `cv_threads` runs OpenCV with that many threads (the pipeline's detect.threads), so that
    per-part CPU costs compare with the pipeline's processes; None keeps OpenCV's default, as the
    notebooks' loop ran.
    """
    previous = cv2.getNumThreads()
    if cv_threads is not None:
        cv2.setNumThreads(cv_threads)
    try:
        return _run_naive(clip, gallery_path, feeds, frames_per_feed, detect or DetectConfig())
    finally:
        cv2.setNumThreads(previous)


def _run_naive(
    clip: Path, gallery_path: Path, feeds: int, frames_per_feed: int, cfg: DetectConfig
) -> dict[str, Any]:
    detector = make_detector(cfg)
    model = EmbeddingModel.load("sface")
    gallery = Gallery.load(gallery_path, expect_model_id=model.model_id)
    readers = [Feed(clip) for _ in range(feeds)]
    clock = Clock()
    names: Counter[str] = Counter()
    faces_seen = 0
    per_frame_ms: list[float] = []
    try:
        for reader in readers:  # warm-up: first model calls are slow, and not what a loop costs
            frame = reader.read()
            found = detector.detect(frame)
            gallery.identify(model.embed_faces(frame, found)) if found else None
            reader.close()
        readers = [Feed(clip) for _ in range(feeds)]
        started = time.perf_counter()
        for _ in range(frames_per_feed):
            for reader in readers:
                t0, c0 = time.perf_counter(), time.process_time()
                frame = reader.read()
                clock.add("decode", t0, c0)
                t1, c1 = time.perf_counter(), time.process_time()
                faces = [f for f in detector.detect(frame) if min(f.box[2], f.box[3]) >= cfg.min_face]
                clock.add("detect", t1, c1)
                t2, c2 = time.perf_counter(), time.process_time()
                vectors = model.embed_faces(frame, faces)
                clock.add("embed", t2, c2)
                t3, c3 = time.perf_counter(), time.process_time()
                found_ids = gallery.identify(vectors) if len(faces) else []
                clock.add("match", t3, c3)
                names.update(i.name for i in found_ids)
                faces_seen += len(faces)
                per_frame_ms.append((time.perf_counter() - t0) * 1000)
        wall = time.perf_counter() - started
    finally:
        for reader in readers:
            reader.close()
    frames = feeds * frames_per_feed
    face_count = max(1, faces_seen)
    return {
        "feeds": feeds,
        "frames": frames,
        "wall_s": round(wall, 3),
        "fps": round(frames / wall, 2),
        "faces_per_frame": round(faces_seen / frames, 3),
        "frame_ms": _percentiles(per_frame_ms),
        "part_ms_per_frame": {p: round(clock.wall[p] / frames * 1000, 3) for p in PARTS},
        "part_cpu_ms_per_frame": {p: round(clock.cpu[p] / frames * 1000, 3) for p in PARTS},
        "embed_cpu_ms_per_face": round(clock.cpu["embed"] / face_count * 1000, 3),
        "embed_ms_per_face": round(clock.wall["embed"] / face_count * 1000, 3),
        "names": dict(names.most_common()),
    }


def detect_costs(clip: Path, frames: int, detect: DetectConfig | None = None) -> dict[str, Any]:
    """CPU ms per frame of what a detect worker does, by mode (detect.camera in this process).

    A full frame includes detection, quality, tracking and the upright look and crop of the
    faces it embeds; a followed frame the motion check and template matching; a still frame the
    motion check alone. Frames are fed at the clip's 30 fps with the pipeline's defaults.
    """
    from detect.camera import CameraDetect

    cfg = detect or DetectConfig()
    camera = CameraDetect("bench", cfg, make_detector(cfg))
    reader = Feed(clip)
    spent: dict[str, float] = {}
    count: Counter[str] = Counter()
    try:
        for i in range(frames):
            frame = Frame("bench", i, int(i / 30.0 * 1e9), image=reader.read())
            c0 = time.process_time()
            out = camera.handle(frame, interval_s=0.0)
            mode = out.mode.value
            spent[mode] = spent.get(mode, 0.0) + time.process_time() - c0
            count[mode] += 1
    finally:
        reader.close()
    return {
        "cpu_ms_per_frame": {m: round(spent[m] / count[m] * 1000, 3) for m in count},
        "frames": dict(count),
    }
