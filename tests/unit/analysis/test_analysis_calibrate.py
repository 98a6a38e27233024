"""`facestream calibrate` on the real demo photos (5 people, 9 photos: 5 genuine, 31 impostor pairs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from analysis.cli import written_threshold
from bus.config import load_config
from match.gallery import Gallery
from tests.conftest import facestream
from tests.unit.analysis.conftest import layout, run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 5  # something is drawn


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("calibrate")
    folder = layout(root / "people")
    out = root / "out"
    code = run_cli(["calibrate", str(folder), "--out", str(out), "-q"])
    assert code == 0
    return out, json.loads((out / "report.json").read_text())


def test_genuine_pairs_score_above_impostors(calibrated: tuple[Path, dict[str, Any]]) -> None:
    _, report = calibrated
    assert report["people"] == 5 and report["images"] == 9 and report["faces"] == 9
    assert report["genuine_pairs"] == 5 and report["impostor_pairs"] == 31
    assert report["skipped"] == []
    assert report["genuine_min"] > report["impostor_max"]
    assert report["genuine_mean"] > 0.6 and report["impostor_mean"] < 0.2
    assert report["eer"] == 0.0
    # the EER threshold sits in the gap between the two score sets
    assert report["impostor_max"] < report["eer_threshold"] < report["genuine_min"]


def test_threshold_for_target_far(calibrated: tuple[Path, dict[str, Any]]) -> None:
    out, report = calibrated
    # 31 impostor pairs: FAR <= 0.001 allows none, so the threshold is just above the highest
    t = report["threshold"]
    assert report["impostor_max"] < t < report["impostor_max"] + 1e-5
    assert report["far_at_threshold"] == 0.0 and report["frr_at_threshold"] == 0.0
    assert report["target_far"] == 0.001
    table = {row["label"]: row for row in report["table"]}
    assert set(table) == {"FAR<=0.1", "FAR<=0.01", "FAR<=0.001", "FAR<=0.0001", "model", "EER"}
    assert table["FAR<=0.1"]["far"] == pytest.approx(3 / 31)  # 3 of 31 impostors may pass
    scores = np.load(out / "embeddings.npz")
    assert scores["vectors_0"].shape == (9, 128)


def test_plots_and_curve_written(calibrated: tuple[Path, dict[str, Any]]) -> None:
    out, _ = calibrated
    assert_png(out / "roc.png")
    assert_png(out / "scores.png")
    rows = (out / "far_frr.csv").read_text().splitlines()
    assert rows[0] == "threshold,far,frr" and len(rows) == 1 + 36 + 1  # every distinct score + 1


def test_write_config_changes_only_the_threshold(tmp_path: Path) -> None:
    folder = layout(tmp_path / "people", ["obama", "macron", "ardern"])
    config = tmp_path / "pipeline.yaml"
    config.write_text(
        "# site config\ncameras:\n  - id: hall\n    source: hall.mp4\nmatch:\n  gallery: g.fsg  # staff\n"
        "overlay:\n  hold_s: 0.25\n"
    )
    before = yaml.safe_load(config.read_text())
    out = tmp_path / "out"
    assert (
        run_cli(
            [
                "calibrate",
                str(folder),
                "--out",
                str(out),
                "-q",
                "--target-far",
                "0.1",
                "--write-config",
                str(config),
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    after = yaml.safe_load(config.read_text())
    written = after["match"].pop("threshold")
    assert written == written_threshold(report["threshold"]) and 0 <= written - report["threshold"] < 1e-4
    assert after == before
    assert "# site config" in config.read_text() and "# staff" in config.read_text()
    assert load_config(config).match.threshold == written


def test_write_gallery_sets_its_threshold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = layout(tmp_path / "people", ["obama", "macron", "ardern", "biden"])
    out = tmp_path / "out"
    gallery_path = tmp_path / "g.fsg"
    g = Gallery.create("sface-2021dec", 128, 0.363)
    g.add("someone", np.eye(128, dtype=np.float32)[0])
    g.save(gallery_path)
    args = ["calibrate", str(folder), "--out", str(out), "-q", "--target-far", "0.1"]
    assert run_cli([*args, "--write-gallery", str(gallery_path)]) == 0
    report = json.loads((out / "report.json").read_text())
    loaded = Gallery.load(gallery_path)
    assert loaded.threshold == written_threshold(report["threshold"]) != 0.363
    assert loaded.counts() == {"someone": 1}
    printed = capsys.readouterr().out
    assert f"into gallery {gallery_path}" in printed and "EER 0.00%" in printed


def test_calibrate_as_a_subprocess(tmp_path: Path) -> None:
    folder = layout(tmp_path / "people", ["obama", "macron", "sunak"])
    out = tmp_path / "out"
    proc = facestream(["calibrate", str(folder), "--out", str(out), "--target-far", "0.5"])
    assert proc.returncode == 0, proc.stderr
    assert "calibrate: embedding" in proc.stderr  # the progress bar
    report = json.loads((out / "report.json").read_text())
    # obama x3 + macron x2 + sunak: 3 + 1 genuine pairs, 6 + 3 + 2 = 11 impostor pairs
    assert (report["genuine_pairs"], report["impostor_pairs"]) == (4, 11)
    assert f"threshold for FAR<=0.5: {report['threshold']:.4f}" in proc.stdout
    assert report["far_at_threshold"] <= 0.5
    assert_png(out / "roc.png")


def test_a_threshold_for_a_far_the_photos_cannot_measure_is_not_written(tmp_path: Path) -> None:
    """31 impostor pairs cannot show FAR <= 0.001: the threshold just above the highest of them
    would name the next stranger who scores a little higher."""
    folder = layout(tmp_path / "people")
    config = tmp_path / "pipeline.yaml"
    config.write_text("cameras:\n  - id: hall\n    source: hall.mp4\nmatch:\n  gallery: g.fsg\n")
    gallery_path = tmp_path / "g.fsg"
    g = Gallery.create("sface-2021dec", 128, 0.363)
    g.add("someone", np.eye(128, dtype=np.float32)[0])
    g.save(gallery_path)
    before = (config.read_bytes(), gallery_path.read_bytes())
    proc = facestream(
        [
            *["calibrate", str(folder), "--out", str(tmp_path / "out"), "-q"],
            *["--write-config", str(config), "--write-gallery", str(gallery_path)],
        ]
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert "threshold not written" in last and "31 impostor" in last and "--target-far 0.0323" in last
    assert (config.read_bytes(), gallery_path.read_bytes()) == before
    assert "threshold for FAR<=0.001" in proc.stdout  # the figures are still shown


def test_where_the_threshold_goes_is_checked_before_any_work(tmp_path: Path) -> None:
    folder = layout(tmp_path / "people", ["obama", "macron", "sunak"])
    out = tmp_path / "out"
    for target in (
        ["--write-config", str(tmp_path / "none.yaml")],
        ["--write-gallery", str(tmp_path / "none.fsg")],
    ):
        proc = facestream(["calibrate", str(folder), "--out", str(out), "-q", "--target-far", "0.5", *target])
        assert (proc.returncode == 2 and "not found" in proc.stderr) or "cannot read" in proc.stderr, (
            proc.stderr
        )
        assert not (out / "report.json").exists()  # nothing was computed, nothing half applied
