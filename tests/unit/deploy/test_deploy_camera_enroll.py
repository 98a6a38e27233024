"""One-shot enrollment from a camera: the clip stands in for the camera (same capture code path)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from deploy.assets import carphone_video
from tests.conftest import facestream


def test_enroll_from_camera_then_identify_a_later_frame(tmp_path: Path) -> None:
    gallery, snap = tmp_path / "g.fsg", tmp_path / "snap.png"
    proc = facestream(
        [
            "enroll",
            str(gallery),
            "--camera",
            str(carphone_video()),
            "--name",
            "driver",
            "--snapshot",
            str(snap),
        ]
    )
    assert proc.returncode == 0, proc.stderr
    assert "enrolled driver: 1 face from camera" in proc.stdout
    assert cv2.imread(str(snap)) is not None
    cap = cv2.VideoCapture(str(carphone_video()))
    frame = None
    for _ in range(100):
        ok, frame = cap.read()
        assert ok
    cap.release()
    later = tmp_path / "frame100.png"
    assert frame is not None
    cv2.imwrite(str(later), frame)
    found = facestream(["identify", str(gallery), str(later)])
    assert found.returncode == 0 and ": driver " in found.stdout, found.stdout + found.stderr


def test_camera_enrollment_errors(tmp_path: Path) -> None:
    gallery = tmp_path / "g.fsg"
    no_name = facestream(["enroll", str(gallery), "--camera", str(carphone_video())])
    assert no_name.returncode == 2 and "--camera needs --name" in no_name.stderr
    blank = tmp_path / "blank.mp4"
    writer = cv2.VideoWriter(str(blank), cv2.VideoWriter.fourcc(*"mp4v"), 10, (160, 120))
    for _ in range(10):
        writer.write(np.full((120, 160, 3), 90, np.uint8))
    writer.release()
    empty = facestream(["enroll", str(gallery), "--camera", str(blank), "--name", "x", "--frames", "5"])
    assert empty.returncode == 2 and "no face in the first 5 frames" in empty.stderr
    assert "Traceback" not in empty.stderr
    bad = facestream(["enroll", str(gallery), "--camera", "ftp://example.invalid/cam", "--name", "x"])
    assert bad.returncode == 2 and "unknown camera source" in bad.stderr
    assert not gallery.exists()
