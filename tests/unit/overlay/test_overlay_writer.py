"""MP4 writing with OpenCV, read back with OpenCV; bad output folders fail with one line."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bus.errors import FacestreamError
from overlay.writer import Mp4Writer, camera_output, check_writable


def test_one_file_per_camera_when_several() -> None:
    out = Path("/videos/run.mp4")
    assert camera_output(out, "cam0", 1) == out
    assert camera_output(out, "door.1", 3) == Path("/videos/run-door.1.mp4")


def test_frames_are_written_and_read_back(tmp_path: Path, clip: Path) -> None:
    cap = cv2.VideoCapture(str(clip))
    frames = [cap.read()[1] for _ in range(12)]
    writer = Mp4Writer(tmp_path / "sub" / "out.mp4")  # the folder is created
    for f in frames:
        writer.write(f, 29.97)
    writer.write(cv2.resize(frames[0], (352, 288)), 29.97)  # another size is fitted, not refused
    writer.close()
    back = cv2.VideoCapture(str(tmp_path / "sub" / "out.mp4"))
    assert back.get(cv2.CAP_PROP_FPS) == pytest.approx(29.97, abs=0.01)
    read = []
    while True:
        ok, f = back.read()
        if not ok:
            break
        read.append(f)
    assert len(read) == 13 == writer.frames
    assert read[0].shape == (144, 176, 3)
    assert np.abs(read[5].astype(int) - frames[5].astype(int)).mean() < 12  # lossy, same picture


def test_unknown_fps_falls_back_to_25(tmp_path: Path) -> None:
    writer = Mp4Writer(tmp_path / "x.mp4")
    writer.write(np.zeros((64, 64, 3), np.uint8), 0.0)
    writer.close()
    assert writer.fps == 25.0
    assert cv2.VideoCapture(str(tmp_path / "x.mp4")).get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)


def test_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    with pytest.raises(FacestreamError, match=r"^cannot write video .*taken/out\.mp4: .*is not a folder$"):
        Mp4Writer(blocker / "out.mp4")


def test_output_path_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out.mp4").mkdir()
    with pytest.raises(FacestreamError, match="it is a folder"):
        check_writable(tmp_path / "out.mp4", "video")
