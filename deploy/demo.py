"""`facestream demo`: real photos and a real clip through the real multi-process pipeline.

The carphone driver is enrolled one-shot from the clip's first frame and must be named in the
later frames; a second clip shows other photos of enrolled people and two people who are not.
With `serve`, both clips loop and the operator's console (events and web stages) stays up until
Ctrl-C.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2

from bus.config import PipelineConfig, dump_config, parse_config
from bus.errors import FacestreamError
from deploy.assets import carphone_video, photo
from deploy.ports import free_port, free_port_block
from deploy.scenes import truth_file
from deploy.supervisor import Supervisor
from deploy.truth import TruthScore, load_results, load_truth, score
from detect.base import Detector
from faces.analyzer import FaceAnalyzer
from faces.enroll import enroll, enroll_from_camera
from faces.images import letterbox, letterbox_transform, read_image

log = logging.getLogger("facestream.demo")

ENROLLED = ("macron_1.jpg", "ardern_1.jpg", "obama_1.jpg")
# (photo, who the pipeline must say it is): the last two people are not enrolled.
SLIDESHOW = (
    ("macron_2.jpg", "macron"),
    ("ardern_2.jpg", "ardern"),
    ("obama_2.jpg", "obama"),
    ("sunak_1.jpg", "Unknown"),
    ("biden_1.jpg", "Unknown"),
)
SLIDE_FPS = 10.0
SLIDE_FRAMES = 15
SLIDE_SIZE = (640, 480)
CARPHONE_NAME = "carphone_driver"


@dataclass(frozen=True)
class DemoResult:
    out_dir: Path
    summary: dict[str, object]
    videos: list[Path]
    exit_code: int
    truth: TruthScore  # the photos clip scored against its truth: wrong names, share named right


def write_slideshow(path: Path, detector: Detector) -> dict[str, object]:
    """The photos clip and its truth, in the format of deploy.scenes: every frame's face with its
    box (the photo's detected face, letterboxed) and the name the pipeline must show on it."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), SLIDE_FPS, SLIDE_SIZE)
    if not writer.isOpened():
        raise FacestreamError(f"cannot write {path}")
    frames: list[dict[str, object]] = []
    try:
        for i, (name, expected) in enumerate(SLIDESHOW):
            image = read_image(photo(name))
            faces = detector.detect(image)
            if not faces:
                raise FacestreamError(f"no face found in demo photo {name}")
            x, y, bw, bh = max(faces, key=lambda f: f.box[2] * f.box[3]).box
            scale, x0, y0 = letterbox_transform((image.shape[1], image.shape[0]), SLIDE_SIZE)
            box = [
                round(x * scale + x0, 1),
                round(y * scale + y0, 1),
                round(bw * scale, 1),
                round(bh * scale, 1),
            ]
            frame = letterbox(image, SLIDE_SIZE)
            for _ in range(SLIDE_FRAMES):
                writer.write(frame)
                truth = [{"actor": i, "name": expected, "box": box, "photo": name}]
                frames.append({"seq": len(frames), "faces": truth})
    finally:
        writer.release()
    return {"scene": "photos", "fps": SLIDE_FPS, "size": list(SLIDE_SIZE), "frames": frames}


def console_sections(out: Path, workers: int, web_port: int) -> dict[str, object]:
    """events, web and metrics for `demo --serve` (metrics feed the console's health view)."""
    from bus.topology import STAGES

    offsets = sorted({STAGES[n].metrics_offset + i for n in ("detect", "embed") for i in range(workers)})
    offsets += [0, 1] + [STAGES[n].metrics_offset for n in ("match", "overlay", "events", "web")]
    return {
        "events": {"data_dir": str(out / "data")},
        "web": {"port": web_port},
        "metrics": {"base_port": free_port_block(offsets)},
    }


def build_config(
    out: Path,
    ipc_dir: Path,
    gallery: Path,
    clip: Path,
    detector: str,
    workers: int,
    mjpeg_port: int | None,
    serve: dict[str, object] | None = None,
) -> PipelineConfig:
    """The demo's pipeline; `serve` (console_sections) loops the clips and adds the console."""
    loop = serve is not None
    return parse_config(
        {
            "cameras": [
                {"id": "carphone", "source": str(carphone_video()), "loop": loop},
                {"id": "photos", "source": str(clip), "loop": loop},
            ],
            "bus": {"transport": "ipc", "ipc_dir": str(ipc_dir)},
            "detect": {"backend": detector, "workers": workers},
            "embed": {"workers": workers},
            "match": {"gallery": str(gallery)},
            "overlay": {
                "output": str(out / "overlay.mp4"),
                "results_log": str(out / "results.jsonl"),
                "mjpeg_port": mjpeg_port,
            },
            "supervisor": {"log_dir": str(out / "logs"), "max_restarts": 5 if loop else 0},
            **(serve or {}),
        },
        "demo config",
    )


def run_demo(
    out: Path,
    detector: str = "yunet",
    workers: int = 1,
    mjpeg_port: int | None = None,
    serve_port: int | None = None,
    on_started: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the demo; with `serve_port`, loop the clips and serve the console there until stopped
    (`on_started` gets the console's URL once every stage is up)."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("results.jsonl", "results.summary.json", "gallery.fsg"):
        (out / stale).unlink(missing_ok=True)
    analyzer = FaceAnalyzer()
    gallery_path = out / "gallery.fsg"
    enroll(gallery_path, [photo(p) for p in ENROLLED], analyzer, progress=False)
    # One-shot: the driver from the earliest frame of the clip that shows a face.
    enroll_from_camera(gallery_path, str(carphone_video()), CARPHONE_NAME, analyzer, max_frames=10)
    clip = out / "photos_clip.mp4"
    truth = write_slideshow(clip, analyzer.detector)
    truth_file(clip).write_text(json.dumps(truth, separators=(",", ":")))
    ipc_dir = Path(tempfile.mkdtemp(prefix="fs-demo-"))  # ipc paths must stay short
    try:
        serve = None
        if serve_port is not None:
            mjpeg_port = mjpeg_port or free_port()
            serve = console_sections(out, workers, serve_port)
        config = build_config(out, ipc_dir, gallery_path, clip, detector, workers, mjpeg_port, serve)
        config_path = out / "demo-config.yaml"
        dump_config(config, config_path)
        url = f"http://127.0.0.1:{serve_port}/"
        started = None if on_started is None or serve_port is None else (lambda: on_started(url))
        supervisor = Supervisor(config, config_path, ipc_dir / "run", on_started=started)
        code = supervisor.run()
        if code != 0:
            why = supervisor.last_error or f"exit code {code}"
            raise FacestreamError(f"the pipeline stopped: {why} (logs in {out / 'logs'})")
    finally:
        shutil.rmtree(ipc_dir, ignore_errors=True)
    summary_path = out / "results.summary.json"
    if not summary_path.exists():
        raise FacestreamError(f"the pipeline wrote no summary (logs in {out / 'logs'})")
    summary = json.loads(summary_path.read_text())
    videos = sorted(out.glob("overlay*.mp4"))
    checked = score(load_results(out / "results.jsonl", "photos"), load_truth(truth_file(clip)))
    return DemoResult(out, summary, videos, 0, checked)
