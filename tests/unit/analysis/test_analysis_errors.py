"""Bad input for the analysis commands: one clear FacestreamError, unreadable photos skipped and reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from bus.errors import FacestreamError
from deploy.cli import build_parser
from tests.conftest import facestream
from tests.unit.analysis.conftest import PHOTOS, layout, parse, run_cli


def test_commands_are_registered() -> None:
    args = parse(["eval", "x", "--model", "a.onnx", "--model", "sface", "--pairs", "p.txt", "--folds", "5"])
    assert args.model == ["a.onnx", "sface"] and args.folds == 5 and args.detector == "yunet"
    args = parse(["calibrate", "x"])
    assert (args.target_far, args.model, args.out) == (0.001, "sface", Path("facestream-calibrate"))
    args = parse(["cluster", "x", "--k", "3", "--copy"])
    assert (args.k, args.max_k, args.copy) == (3, 10, True)
    help_text = build_parser().format_help()
    for command in ("calibrate", "cluster", "eval"):
        assert command in help_text


@pytest.mark.parametrize("command", ["calibrate", "cluster", "eval"])
def test_missing_folder(tmp_path: Path, command: str) -> None:
    with pytest.raises(FacestreamError, match="not found"):
        run_cli([command, str(tmp_path / "nope"), "--out", str(tmp_path / "out"), "-q"])


@pytest.mark.parametrize("command", ["calibrate", "eval"])
def test_the_flat_layout_that_enroll_reads_is_read_too(tmp_path: Path, command: str) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("obama_1.jpg", "obama_2.jpg", "macron_1.jpg", "macron_2.jpg", "sunak_1.jpg"):
        shutil.copyfile(PHOTOS / name, flat / name)
    assert run_cli([command, str(flat), "--out", str(tmp_path / "out"), "-q"]) == 0


def test_calibrate_needs_two_people(tmp_path: Path) -> None:
    folder = layout(tmp_path / "people", ["obama"])
    with pytest.raises(FacestreamError, match="at least 2 people"):
        run_cli(["calibrate", str(folder), "--out", str(tmp_path / "out"), "-q"])


def test_calibrate_needs_a_genuine_pair(tmp_path: Path) -> None:
    folder = layout(tmp_path / "people", ["biden", "sunak"])
    with pytest.raises(FacestreamError, match="no genuine pairs"):
        run_cli(["calibrate", str(folder), "--out", str(tmp_path / "out"), "-q"])


def test_bad_target_far(tmp_path: Path) -> None:
    folder = layout(tmp_path / "people", ["obama", "sunak"])
    with pytest.raises(FacestreamError, match="--target-far"):
        run_cli(["calibrate", str(folder), "--out", str(tmp_path / "out"), "-q", "--target-far", "2"])


def test_no_faces_at_all(tmp_path: Path) -> None:
    for person in ("wall", "sky"):
        (tmp_path / "people" / person).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "people" / person / "a.png"), np.full((200, 200, 3), 180, np.uint8))
    with pytest.raises(FacestreamError, match="no face found in any photo"):
        run_cli(["calibrate", str(tmp_path / "people"), "--out", str(tmp_path / "out"), "-q"])
    with pytest.raises(FacestreamError, match="no face found in any photo"):
        run_cli(["cluster", str(tmp_path / "people"), "--out", str(tmp_path / "out"), "-q"])


def test_unreadable_image_is_skipped_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = layout(tmp_path / "people", ["obama", "macron"])
    broken = folder / "obama" / "obama_9.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    assert run_cli(["calibrate", str(folder), "--out", str(out), "-q"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == 5 and report["skipped"] == [
        [str(broken), f"cannot read image {broken}: not an image or a corrupt file"]
    ]
    assert f"skipped {broken}: cannot read image" in capsys.readouterr().err


def test_k_larger_than_faces(tmp_path: Path) -> None:
    folder = layout(tmp_path / "people", ["macron", "sunak"])
    with pytest.raises(FacestreamError, match="more than the 3 faces"):
        run_cli(["cluster", str(folder), "--out", str(tmp_path / "out"), "-q", "--k", "5"])


def test_error_is_one_line_in_a_subprocess(tmp_path: Path) -> None:
    proc = facestream(["eval", str(tmp_path / "missing"), "--out", str(tmp_path / "out")])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"facestream: error: folder {tmp_path / 'missing'} not found"
