"""H.264 MP4 writing with PyAV, read back with OpenCV and PyAV; bad output folders fail with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from bus.errors import FacestreamError
from overlay.writer import Mp4Writer, camera_output, check_writable, next_free_segment, segment_path
from tests.conftest import REPO


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


def _count(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n


def test_long_runs_roll_over_into_playable_segments(tmp_path: Path, clip: Path) -> None:
    cap = cv2.VideoCapture(str(clip))
    frames = [cap.read()[1] for _ in range(25)]
    writer = Mp4Writer(tmp_path / "out.mp4", segment_s=1.0)
    for f in frames:
        writer.write(f, 10.0)  # 10 frames a second: a new file every 10 frames
    writer.close()
    assert writer.paths == [tmp_path / "out.mp4", tmp_path / "out.seg1.mp4", tmp_path / "out.seg2.mp4"]
    assert [_count(p) for p in writer.paths] == [10, 10, 5]
    assert writer.frames == 25 and writer.path == tmp_path / "out.seg2.mp4"


GROWTH = """
import os, sys
from pathlib import Path
import numpy as np
from overlay.writer import Mp4Writer

def rss_mib():
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

segment_s = None if sys.argv[2] == "none" else float(sys.argv[2])
writer = Mp4Writer(Path(sys.argv[1]), segment_s=segment_s)
frame = np.zeros((48, 64, 3), np.uint8)
for i in range(32_000):
    if i == 2_000:  # allocators and the encoder are warm
        before = rss_mib()
    frame[0, 0, 0] = i % 255
    writer.write(frame, 1000.0)
print(rss_mib() - before)
writer.close()
"""


def test_an_open_mp4_stays_flat_in_memory(tmp_path: Path) -> None:
    """Fragmented MP4 writes its index with each fragment: an open file holds no growing index
    (OpenCV's mp4v writer held ~72 bytes a frame until closed). Measured in a fresh process each.
    """
    if not Path("/proc/self/statm").exists():
        pytest.skip("needs /proc to read the memory in use")

    def growth(segment_s: str) -> float:
        out = subprocess.run(
            [sys.executable, "-c", GROWTH, str(tmp_path / f"{segment_s}.mp4"), segment_s],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=REPO,
        )
        assert out.returncode == 0, out.stderr
        return float(out.stdout.strip().splitlines()[-1])

    one_file = growth("none")
    assert one_file < 1.0, f"one open MP4 grew {one_file:.2f} MiB over 30,000 frames"


def test_h264_that_browsers_play_and_readable_while_written(tmp_path: Path, clip: Path) -> None:
    cap = cv2.VideoCapture(str(clip))
    frames = [cap.read()[1] for _ in range(30)]
    writer = Mp4Writer(tmp_path / "live.mp4")
    for f in frames:
        writer.write(f, 10.0)  # a keyframe (a fragment) every 2 s of video: 20 frames
    with av.open(str(tmp_path / "live.mp4")) as container:  # still open: the first fragment plays
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = sum(1 for _ in container.decode(stream))
    assert decoded >= 20
    writer.close()
    assert _count(tmp_path / "live.mp4") == 30
    odd = Mp4Writer(tmp_path / "odd.mp4")
    odd.write(np.zeros((63, 81, 3), np.uint8), 5.0)  # 4:2:0 needs even sides
    odd.close()
    assert odd.size == (80, 62) and _count(tmp_path / "odd.mp4") == 1


def test_a_restart_continues_after_the_last_segment_on_disk(tmp_path: Path) -> None:
    base = tmp_path / "out.mp4"
    assert next_free_segment(base) == 0
    base.write_bytes(b"")
    assert next_free_segment(base) == 1
    (tmp_path / "out.seg3.mp4").write_bytes(b"")
    (tmp_path / "out.segX.mp4").write_bytes(b"")  # not ours
    (tmp_path / "other.seg9.mp4").write_bytes(b"")
    assert next_free_segment(base) == 4
    assert segment_path(base, 4) == tmp_path / "out.seg4.mp4" and segment_path(base, 0) == base
