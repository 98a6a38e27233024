"""`python -m bench.truth`: what the viewer sees, scored against truth, on a loaded machine.

    python -m bench.truth --busy 2 --runs 3 --out truth.json

Renders the crowd scene (several moving faces of 50-200 px, two strangers, one face rolled 30
degrees, one person replaced by a stranger at the very same place), runs `facestream run` on it
in real time while `--busy` processes keep the cores busy, and scores results.jsonl against the
scene's truth (deploy.truth): wrong names (the product promises none), strangers named, and the
share of enrolled people's face-frames shown with a box on the face and the right name.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from bench.machine import machine
from deploy.assets import PHOTOS, photo
from deploy.scenes import Cast, Scene, crowd_scene, truth_file, write_scene
from deploy.truth import TruthScore, load_results, load_truth, score
from faces.analyzer import FaceAnalyzer
from faces.enroll import enroll

ENROLLED = ("macron_1.jpg", "ardern_1.jpg", "obama_1.jpg")
CAMERA = "crowd"


@contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """`count` processes that spin until the block ends: the load other work puts on a machine."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait(10)


def prepare(folder: Path, scene: Scene | None = None) -> tuple[Path, Path]:
    """The scene's video (with its truth file) and a gallery of the enrolled people."""
    folder.mkdir(parents=True, exist_ok=True)
    analyzer = FaceAnalyzer()
    scene = scene or crowd_scene(Cast(PHOTOS))
    video = folder / f"{scene.name}.mp4"
    write_scene(scene, video, analyzer.detector)
    gallery = folder / "gallery.fsg"
    gallery.unlink(missing_ok=True)
    enroll(gallery, [photo(p) for p in ENROLLED], analyzer, progress=False)
    return video, gallery


def config(folder: Path, video: Path, gallery: Path, **sections: Any) -> Path:
    """A pipeline config for one realtime camera on the video; ipc sockets in a short temp folder."""
    ipc = Path(tempfile.mkdtemp(prefix="fs-truth-"))
    data: dict[str, Any] = {
        "cameras": [{"id": CAMERA, "source": str(video), "realtime": True}],
        "bus": {"transport": "ipc", "ipc_dir": str(ipc)},
        "match": {"gallery": str(gallery)},
        "overlay": {"output": str(folder / "overlay.mp4"), "results_log": str(folder / "results.jsonl")},
        "supervisor": {"log_dir": str(folder / "logs"), "max_restarts": 0},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run_once(
    folder: Path, video: Path, gallery: Path, busy: int, timeout_s: float = 300.0
) -> tuple[TruthScore, dict[str, Any]]:
    """One `facestream run` on the video with `busy` spinning processes beside it: (score, summary)."""
    cfg = config(folder, video, gallery)
    (folder / "results.jsonl").unlink(missing_ok=True)
    with busy_cores(busy):
        proc = subprocess.run(
            [sys.executable, "-m", "deploy.cli", "run", str(cfg)],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"facestream run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads((folder / "results.summary.json").read_text())
    checked = score(load_results(folder / "results.jsonl", CAMERA), load_truth(truth_file(video)))
    return checked, summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.truth", description=__doc__.split("\n")[0])
    p.add_argument("--busy", type=int, default=2, help="spinning processes beside the pipeline (default 2)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="JSON report")
    p.add_argument("--keep", type=Path, default=None, help="keep videos, results and logs in this folder")
    args = p.parse_args(argv)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="fs-bench-truth-"))
    video, gallery = prepare(folder)
    runs = []
    for i in range(args.runs):
        started = time.monotonic()
        checked, summary = run_once(folder, video, gallery, args.busy)
        cam = summary["per_camera"][CAMERA]
        row = {
            **checked.as_dict(),
            "wall_s": round(time.monotonic() - started, 1),
            "latency_ms": cam["latency_ms"],
            "hold_s": cam.get("hold_s"),
        }
        runs.append(row)
        print(f"run {i + 1}: {checked.summary()}", flush=True)
    shares = [r["share"] for r in runs]
    report = {
        "machine": machine(),
        "busy_processes": args.busy,
        "runs": runs,
        "wrong_names_total": sum(r["wrong_names"] for r in runs),
        "share_min": min(shares),
        "share_mean": round(sum(shares) / len(shares), 4),
    }
    print(
        f"{args.runs} runs, {args.busy} busy processes, {report['machine']['cpu']} x{report['machine']['cores']}: {report['wrong_names_total']} wrong names; "
        f"named right {100 * report['share_min']:.1f}-{100 * max(shares):.1f} % (mean {100 * report['share_mean']:.1f} %)"
    )
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
