"""`facestream eval` on the real photos: all pairs, an LFW-format pairs file, two models, detectors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from analysis.evaluate import evaluate
from bus.errors import FacestreamError
from tests.unit.analysis.conftest import layout, run_cli
from tests.unit.analysis.test_analysis_calibrate import assert_png

# 2 folds of 2 same + 2 different pairs, LFW layout (header "FOLDS N", tab separated)
PAIRS = """2\t2
ardern\t1\t2
macron\t1\t2
ardern\t1\tbiden\t1
macron\t2\tobama\t3
obama\t1\t2
obama\t2\t3
sunak\t1\tobama\t1
biden\t1\tmacron\t1
"""


def test_all_pairs_sface_and_detectors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = layout(tmp_path / "people")
    out = tmp_path / "out"
    assert run_cli(["eval", str(folder), "--out", str(out), "-q"]) == 0
    report = json.loads((out / "report.json").read_text())
    (model,) = report["models"]
    v, ident = model["verification"], model["identification"]
    assert model["model_id"] == "sface-2021dec"
    assert v["protocol"] == "all pairs" and (v["genuine_pairs"], v["impostor_pairs"]) == (5, 31)
    assert v["accuracy_at_model_threshold"] == 1.0
    assert v["kfold_mean"] == 1.0 and len(v["kfold_accuracies"]) == 10
    assert v["eer"] == 0.0
    # obama x3, macron x2, ardern x2 are probes; biden and sunak are distractors
    assert ident["probes"] == 7 and ident["rank1"] == 1.0 and ident["rank1_at_model_threshold"] == 1.0
    rates = {d["name"]: d for d in report["detectors"]}
    assert set(rates) == {"yunet", "haar"}
    for name in ("yunet", "haar"):
        assert rates[name]["images"] == 9 and rates[name]["images_with_face"] == 9
        assert rates[name]["rate"] == 1.0 and rates[name]["faces"] >= 9
        assert rates[name]["ms_per_image"] > 0
    assert_png(out / "roc_0_sface-2021dec.png")
    printed = capsys.readouterr().out
    assert "detector haar: faces found in 9/9 images" in printed


def test_pairs_file_kfold(tmp_path: Path) -> None:
    folder = layout(tmp_path / "lfw", lfw_names=True)
    assert (folder / "obama" / "obama_0003.jpg").is_file()
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(PAIRS)
    out = tmp_path / "out"
    assert (
        run_cli(["eval", str(folder), "--out", str(out), "-q", "--pairs", str(pairs), "--detectors", "yunet"])
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    v = report["models"][0]["verification"]
    assert v["protocol"] == "pairs file pairs.txt"
    assert (v["genuine_pairs"], v["impostor_pairs"], v["skipped_pairs"]) == (4, 4, 0)
    assert v["kfold_accuracies"] == [1.0, 1.0] and v["kfold_mean"] == 1.0
    # each fold's threshold was fit on the other fold: between its impostors and its genuines
    assert all(0.1 < t < 0.7 for t in v["kfold_thresholds"])
    assert [d["name"] for d in report["detectors"]] == ["yunet"]


def test_pairs_file_with_original_names_and_a_bad_reference(tmp_path: Path) -> None:
    folder = layout(tmp_path / "people")  # obama_1.jpg ... found by "obama 1"
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("1\nobama 1 3\nobama 2 sunak 1\n")
    r = evaluate(folder, tmp_path / "out", detectors="yunet", pairs=pairs, progress=False)
    v = r.models[0].verification
    assert (v.genuine, v.impostor) == (1, 1) and v.kfold is None  # one fold: no k-fold
    assert v.accuracy_at_model_threshold == 1.0
    pairs.write_text("1\nobama 1 4\nobama 2 sunak 1\n")
    with pytest.raises(FacestreamError, match="no image 4 of 'obama'"):
        evaluate(folder, tmp_path / "out", detectors="yunet", pairs=pairs, progress=False)


def test_two_models_compared(tmp_path: Path, pixel_model: Path) -> None:
    """Any ONNX model with a model card: SFace against a raw-pixel baseline on the same faces."""
    folder = layout(tmp_path / "people")
    out = tmp_path / "out"
    argv = ["eval", str(folder), "--out", str(out), "-q", "--model", "sface", "--model", str(pixel_model)]
    assert run_cli([*argv, "--detectors", "yunet"]) == 0
    report = json.loads((out / "report.json").read_text())
    sface, pixels = report["models"]
    assert (sface["model_id"], pixels["model_id"]) == ("sface-2021dec", "pixels-8x8-baseline")
    assert pixels["verification"]["genuine_pairs"] == 5 and pixels["verification"]["impostor_pairs"] == 31
    # the learned embedding separates people; raw pixels do not
    assert sface["verification"]["eer"] == 0.0 < pixels["verification"]["eer"]
    assert sface["identification"]["rank1"] >= pixels["identification"]["rank1"]
    assert sface["verification"]["best_accuracy"] > pixels["verification"]["best_accuracy"]
    assert_png(out / "roc_1_pixels-8x8-baseline.png")


def test_mtcnn_detector_rate(tmp_path: Path) -> None:
    """The bundled MTCNN export (detect/models/mtcnn), or FACESTREAM_MTCNN_DIR when set."""
    mtcnn_dir = os.environ.get("FACESTREAM_MTCNN_DIR")
    folder = layout(tmp_path / "people")
    r = evaluate(
        folder,
        tmp_path / "out",
        detectors="yunet,mtcnn",
        mtcnn_dir=Path(mtcnn_dir) if mtcnn_dir else None,
        progress=False,
    )
    rates = {t.name: t for t in r.detectors}
    assert rates["mtcnn"].images == 9 and rates["mtcnn"].with_face >= 8
