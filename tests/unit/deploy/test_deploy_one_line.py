"""What the README promises: a problem the user can fix is one line and exit code 2, and nothing
else reaches the terminal (no PyYAML marks, no faiss import notes, no OpenCV/FFmpeg/libjpeg chatter,
no Python exception names); doubtful input is refused before anything slow starts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml

from match.gallery import Gallery
from tests.conftest import REPO, facestream

PACKAGES = "facestream|bus|capture|detect|embed|match|overlay|deploy|analysis|trainer"
OUR_LOG_LINE = re.compile(rf"^\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ({PACKAGES})[.:]")


def _only_line(proc: subprocess.CompletedProcess[str], needle: str) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, (proc.returncode, proc.stderr)
    assert lines[0].startswith("facestream: error:") and needle in lines[0], lines[0]
    return lines[0]


def _nothing_foreign(stderr: str) -> None:
    for line in stderr.splitlines():
        if line.strip():
            assert OUR_LOG_LINE.match(line) or line.startswith("facestream: error:"), line


def test_a_yaml_syntax_error_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("cameras:\n  - id: a\n    source: x.mp4\n   bad: [\n")
    line = _only_line(facestream(["run", str(path)]), "not valid YAML at line 4, column 4")
    assert "<unicode string>" not in line


def test_run_shows_only_its_own_lines(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "g.fsg"
    assert facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    config = tmp_path / "c.yaml"
    # refused at once; given up at once (a camera that is off is otherwise retried forever)
    camera = {"id": "door", "source": "rtsp://127.0.0.1:1/stream", "max_retries": 0}
    bus = {"transport": "ipc", "ipc_dir": str(tmp_path / "ipc")}  # no fixed ports: another run may hold them
    config.write_text(yaml.safe_dump({"cameras": [camera], "match": {"gallery": str(gallery)}, "bus": bus}))
    proc = facestream(["run", str(config)])
    assert proc.returncode == 3, proc.stderr  # camera_lost: restart policies apply
    _nothing_foreign(proc.stderr)  # OpenCV's "[ WARN:0@...]" lines went to DEBUG
    assert "faiss" not in proc.stderr  # e.g. "Could not load library ... ModuleNotFoundError"
    assert "camera door: cannot open it (cannot open camera stream" in proc.stderr
    assert (
        proc.stderr.strip().splitlines()[-1]
        == "facestream: error: gave up on the camera of capture-0 (camera.max_retries)"
    )


def test_libjpeg_warnings_stay_out_of_the_terminal(tmp_path: Path, photos: Path) -> None:
    data = (photos / "obama_1.jpg").read_bytes()
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(data[:-2] + bytes(4000) + data[-2:])  # libjpeg: "Corrupt JPEG data: ..."
    assert cv2.imread(str(damaged)) is not None  # it decodes, with a warning on fd 2
    proc = facestream(["verify", str(damaged), str(photos / "obama_2.jpg")])
    assert proc.returncode in (0, 1) and "Corrupt JPEG" not in proc.stderr, proc.stderr
    _nothing_foreign(proc.stderr)


def test_a_bad_gallery_is_described_in_words(tmp_path: Path, photos: Path) -> None:
    bad = tmp_path / "g.fsg"
    bad.write_bytes(b"not a gallery at all")
    line = _only_line(facestream(["identify", str(bad), str(photos / "obama_1.jpg")]), "not a zip archive")
    assert "BadZip" not in line


def test_a_threshold_that_is_no_similarity_is_refused(photos: Path) -> None:
    args = [str(photos / "obama_1.jpg"), str(photos / "obama_2.jpg")]
    _only_line(facestream(["verify", *args, "--threshold", "2"]), "between -1 and 1")
    _only_line(facestream(["verify", *args, "--threshold", "-1"]), "must be above 0")
    _only_line(facestream(["identify", "none.fsg", args[0], "--threshold", "0"]), "must be above 0")


def test_the_same_photo_is_not_enrolled_twice(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "g.fsg"
    assert facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    copy = tmp_path / "macron_again.jpg"
    copy.write_bytes((photos / "macron_1.jpg").read_bytes())
    proc = facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), str(copy), "-q"])
    assert proc.returncode == 2 and "already enrolled as macron" in proc.stderr, proc.stderr
    proc = facestream(["enroll", str(gallery), str(photos / "macron_2.jpg"), str(copy), "-q"])
    assert proc.returncode == 1 and "already enrolled as macron" in proc.stderr, proc.stderr
    assert len(Gallery.load(gallery).vectors_of("macron")) == 2  # macron_1 and macron_2, once each


def test_missing_weights_are_reported_before_tensorflow_loads(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom deploy.cli import main\n"
        f"code = main(['export', 'vggface', '--weights', {str(tmp_path / 'none.h5')!r}])\n"
        "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'no tensorflow')\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    _only_line(proc, "not found")
    assert proc.stdout.strip() == "no tensorflow"


def test_damaged_images_are_still_refused_in_one_line(tmp_path: Path) -> None:
    garbage = tmp_path / "g.jpg"
    garbage.write_bytes(b"\xff\xd8" + np.random.default_rng(0).bytes(500))
    _only_line(facestream(["verify", str(garbage), str(garbage)]), "cannot read image")


def test_a_face_the_gallery_names_as_someone_else_is_not_enrolled_under_another_name(
    tmp_path: Path, photos: Path
) -> None:
    gallery = tmp_path / "g.fsg"
    assert facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    wrong = ["enroll", str(gallery), str(photos / "macron_2.jpg"), "--name", "obama", "-q"]
    proc = facestream(wrong)
    assert proc.returncode == 2 and "looks like macron" in proc.stderr and "--allow-lookalike" in proc.stderr
    assert Gallery.load(gallery).counts() == {"macron": 1}
    assert facestream([*wrong, "--allow-lookalike"]).returncode == 0  # the user insists: a twin, say
    assert Gallery.load(gallery).counts() == {"macron": 1, "obama": 1}
    right = facestream(["enroll", str(gallery), str(photos / "obama_1.jpg"), "-q"])
    assert right.returncode == 0, right.stderr  # another person is enrolled as before
