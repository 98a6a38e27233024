"""How fast each embedder runs as embed runs it (preprocessing included), and how big its file is.

`python -m trainer.speed sface A.onnx B.onnx ...` prints one row per model: file size, wall and
CPU milliseconds per face (one face per call, `--threads` onnxruntime threads, default 1) and the
ratio to the first model, measured in the same run. CPU time is the steadier figure on a shared
machine; wall time is what a camera waits.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bus.errors import FacestreamError
from bus.records import Face


@dataclass(frozen=True)
class Speed:
    model: str
    model_id: str
    dim: int
    input_size: int
    file_mb: float
    wall_ms_per_face: float  # median over the timed calls
    cpu_ms_per_face: float  # process CPU time over all timed calls / faces


def embedder_speed(spec: str, faces: Sequence[np.ndarray], threads: int = 1, seconds: float = 3.0) -> Speed:
    """Embed `faces` one at a time, round after round, for about `seconds` (after one warm-up round)."""
    from embed.model import EmbeddingModel

    if not faces:
        raise FacestreamError("speed: no faces to embed")
    model = EmbeddingModel.load(spec, threads=threads)
    crops = [model.align(f, _whole(f)) for f in faces]
    for crop in crops:
        model.embed([crop])
    walls: list[float] = []
    cpu0, end = time.process_time(), time.monotonic() + seconds
    while time.monotonic() < end or not walls:
        for crop in crops:
            t0 = time.perf_counter()
            model.embed([crop])
            walls.append(time.perf_counter() - t0)
    cpu = time.process_time() - cpu0
    return Speed(
        model=spec,
        model_id=model.model_id,
        dim=model.dim,
        input_size=model.input_size[0],
        file_mb=round(model.path.stat().st_size / 1e6, 1),
        wall_ms_per_face=round(1000 * statistics.median(walls), 2),
        cpu_ms_per_face=round(1000 * cpu / len(walls), 2),
    )


def _whole(image: np.ndarray) -> Face:
    """A face record covering the whole (already aligned) crop: embed's box alignment then only resizes."""
    h, w = image.shape[:2]
    return Face(box=(0.0, 0.0, float(w), float(h)), score=1.0, landmarks=None)


def table(rows: Sequence[Speed]) -> str:
    base = rows[0]
    lines = [
        f"| model | input | dim | file MB | wall ms/face | CPU ms/face | CPU x {base.model_id} |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ratio = r.cpu_ms_per_face / base.cpu_ms_per_face
        lines.append(
            f"| {r.model_id} | {r.input_size} | {r.dim} | {r.file_mb:g} | {r.wall_ms_per_face:.1f} "
            f"| {r.cpu_ms_per_face:.1f} | {ratio:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from trainer.facedata import default_photos, parity_crops

    p = argparse.ArgumentParser(prog="python -m trainer.speed", description=__doc__)
    p.add_argument("models", nargs="+", help="'sface' or ONNX files with a facestream model card")
    p.add_argument("--photos", type=Path, default=None, help="faces to embed (default: the demo photos)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per model")
    p.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    args = p.parse_args(argv)
    faces = parity_crops(args.photos or default_photos(), 224)  # real faces; each model resizes them
    rows = [embedder_speed(m, faces, args.threads, args.seconds) for m in args.models]
    print(json.dumps([asdict(r) for r in rows], indent=2) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
