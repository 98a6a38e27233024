"""The exported ResNet50 used like SFace: enroll, verify, identify, calibrate, eval, and the example
pipeline config (MTCNN + ResNet50) run end to end by `facestream run`.

The weights are random (the real ones are not on PyPI), so these tests prove the mechanics: the file
loads everywhere, every stage runs it, galleries keep models apart, a face matches itself. They
cannot prove recognition accuracy; docs/training.md says so.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import cv2
import pytest
import yaml

from bus.config import parse_config
from deploy.assets import carphone_video
from deploy.cli import main
from match.gallery import Gallery
from tests.conftest import REPO, facestream, free_base_port
from tests.unit.analysis.conftest import layout
from tests.unit.trainer.conftest import VGGFace2Export

pytestmark = pytest.mark.train
EXAMPLE = REPO / "examples" / "vggface2_resnet50.yaml"
MODEL_ID = "vggface2-resnet50-2048d"


def facestream_here(argv: list[str]) -> tuple[int, str, str]:
    """`facestream ARGV` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def test_enroll_verify_identify_calibrate_eval(
    resnet50_export: VGGFace2Export, tmp_path: Path, photos_dir: Path
) -> None:
    model = str(resnet50_export.onnx)
    face = ["--detector", "mtcnn", "--model", model]
    people = layout(tmp_path / "people")
    gallery = tmp_path / "resnet50.fsg"
    # Random weights make every face look alike (0.9+): enroll refuses look-alikes unless told.
    lookalike = "--allow-lookalike"
    code, out, err = facestream_here(["enroll", str(gallery), str(people), "-q", lookalike, *face])
    assert code == 0, err
    assert "enrolled obama: 3 photos" in out
    g = Gallery.load(gallery)
    assert (g.model_id, g.dim, len(g), g.threshold) == (MODEL_ID, 2048, 9, 0.5)

    photo = photos_dir / "macron_1.jpg"
    code, out, _ = facestream_here(["verify", str(photo), str(photo), *face])
    assert (code, out.strip()) == (0, "same person: cosine similarity 1.000 (threshold 0.500)")
    code, out, _ = facestream_here(["identify", str(gallery), str(photo), "-k", "2", *face])
    assert code == 0 and ": macron 1.000 (next: " in out  # an enrolled photo finds itself

    # galleries refuse vectors of another model, both ways
    sface_gallery = tmp_path / "sface.fsg"
    assert facestream_here(["enroll", str(sface_gallery), str(photo), "-q", "--detector", "mtcnn"])[0] == 0
    code, _, err = facestream_here(["identify", str(sface_gallery), str(photo), *face])
    assert code == 2 and f"built with model sface-2021dec, this pipeline uses {MODEL_ID}" in err
    code, _, err = facestream_here(["identify", str(gallery), str(photo), "--detector", "mtcnn"])
    assert code == 2 and f"built with model {MODEL_ID}, this pipeline uses sface-2021dec" in err

    cal = tmp_path / "calibrate"
    far = ["--target-far", "0.1"]  # what 31 impostor pairs can measure (0.001 is refused)
    code, out, err = facestream_here(
        ["calibrate", str(people), "--out", str(cal), "-q", *far, *face, "--write-gallery", str(gallery)]
    )
    assert code == 0, err
    report = json.loads((cal / "report.json").read_text())
    assert (report["model_id"], report["faces"], report["genuine_pairs"], report["impostor_pairs"]) == (
        MODEL_ID,
        9,
        5,
        31,
    )
    assert Gallery.load(gallery).threshold == pytest.approx(report["threshold"], abs=1e-4)  # 4 decimals
    code, _, err = facestream_here(
        [
            "calibrate",
            str(people),
            "--out",
            str(cal),
            "-q",
            *far,
            *face,
            "--write-gallery",
            str(sface_gallery),
        ]
    )
    assert code == 2 and "sface-2021dec" in err

    ev = tmp_path / "eval"
    argv = ["eval", str(people), "--out", str(ev), "-q", "--detector", "mtcnn", "--detectors", "mtcnn"]
    code, _, err = facestream_here([*argv, "--model", "sface", "--model", model])
    assert code == 0, err
    sface, resnet = json.loads((ev / "report.json").read_text())["models"]
    assert (sface["model_id"], resnet["model_id"]) == ("sface-2021dec", MODEL_ID)
    assert resnet["verification"]["genuine_pairs"] == 5 and resnet["identification"]["probes"] == 7


def _example_config(tmp_path: Path, onnx_path: Path, gallery: Path) -> Path:
    """The example as a user would adapt it: a video file for the webcam, the files in tmp_path."""
    data = yaml.safe_load(EXAMPLE.read_text())
    assert data["detect"]["backend"] == "mtcnn" and data["embed"]["model"].endswith("resnet50.onnx")
    data["cameras"] = [{"id": "cam0", "source": str(carphone_video())}]  # paced at the clip's rate
    data["bus"]["base_port"] = free_base_port()
    data["embed"]["model"] = str(onnx_path)
    data["match"]["gallery"] = str(gallery)
    data["overlay"] = {
        **data["overlay"],
        "output": str(tmp_path / "out.mp4"),
        "results_log": str(tmp_path / "results.jsonl"),
        "mjpeg_port": None,
    }
    data["metrics"] = {"base_port": None}
    data["supervisor"] = {**data.get("supervisor", {}), "log_dir": str(tmp_path / "logs")}
    parse_config(data, str(EXAMPLE))  # every key the example uses still exists
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_example_config_runs_mtcnn_and_resnet50(
    resnet50_export: VGGFace2Export, tmp_path: Path, photos_dir: Path
) -> None:
    gallery = tmp_path / "gallery.fsg"
    ok, frame = cv2.VideoCapture(str(carphone_video())).read()
    assert ok
    cv2.imwrite(str(tmp_path / "driver.png"), frame)
    # Random weights make every face look alike: enroll refuses look-alikes unless told.
    face = ["--detector", "mtcnn", "--model", str(resnet50_export.onnx), "-q", "--allow-lookalike"]
    assert (
        facestream_here(["enroll", str(gallery), str(tmp_path / "driver.png"), "--name", "driver", *face])[0]
        == 0
    )
    distractors = [str(photos_dir / p) for p in ("macron_1.jpg", "obama_1.jpg")]
    assert facestream_here(["enroll", str(gallery), *distractors, *face])[0] == 0

    config = _example_config(tmp_path, resnet50_export.onnx, gallery)
    done = facestream(["run", str(config)], timeout=300)  # the clip ends, the pipeline stops
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    summary = json.loads((tmp_path / "results.summary.json").read_text())
    fresh = [f for r in results if r["result"] for f in r["faces"]]  # each frame's own result
    assert len(results) == summary["frames"] == 120
    assert summary["frames_with_result"] >= 20 and len(fresh) >= 20, summary
    # random weights name nobody reliably (all faces look alike to them); the names must still be
    # the gallery's, with similarities the model's vectors can give
    assert {f["name"] for f in fresh} <= {"driver", "macron", "obama", "Unknown"}
    assert all(-1.0 <= f["similarity"] <= 1.0 for f in fresh if f["similarity"] is not None)
    assert (tmp_path / "out.mp4").stat().st_size > 10_000
