"""Bad input gets one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml

from tests.conftest import facestream


def _one_line_error(proc, needle: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("facestream: error:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def _config(tmp_path: Path, source: str, gallery: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(
        yaml.safe_dump({"cameras": [{"id": "c", "source": source}], "match": {"gallery": str(gallery)}})
    )
    return path


def test_missing_video(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "g.fsg"
    assert facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    _one_line_error(
        facestream(["run", str(_config(tmp_path, str(tmp_path / "nope.mp4"), gallery))]), "not found"
    )


def test_unknown_camera_url(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "g.fsg"
    assert facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    _one_line_error(
        facestream(["run", str(_config(tmp_path, "ftp://cam.example/x", gallery))]), "unknown camera source"
    )


def test_missing_gallery_at_run(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    _one_line_error(
        facestream(["run", str(_config(tmp_path, str(video), tmp_path / "none.fsg"))]), "not found"
    )


def test_unreadable_image(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    _one_line_error(facestream(["verify", str(bad), str(bad)]), "cannot read image")


def test_image_without_face_at_enrollment(tmp_path: Path) -> None:
    blank = tmp_path / "wall.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 200, np.uint8))
    _one_line_error(facestream(["enroll", str(tmp_path / "g.fsg"), str(blank)]), "no face found")
    assert not (tmp_path / "g.fsg").exists()


def test_empty_gallery(tmp_path: Path, photos: Path) -> None:
    from match.gallery import Gallery

    gallery = tmp_path / "g.fsg"
    assert facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    g = Gallery.load(gallery)
    g.remove("macron")
    g.save(gallery)
    _one_line_error(facestream(["identify", str(gallery), str(photos / "macron_2.jpg")]), "empty")


def test_verify_same_and_different_people(photos: Path) -> None:
    same = facestream(["verify", str(photos / "macron_1.jpg"), str(photos / "macron_2.jpg")])
    assert same.returncode == 0 and "same person" in same.stdout, same.stderr
    for a, b in (("ardern_1.jpg", "ardern_2.jpg"), ("obama_1.jpg", "obama_3.jpg")):
        assert facestream(["verify", str(photos / a), str(photos / b)]).returncode == 0
    for a, b in (
        ("macron_1.jpg", "sunak_1.jpg"),
        ("ardern_1.jpg", "obama_1.jpg"),
        ("biden_1.jpg", "obama_2.jpg"),
    ):
        diff = facestream(["verify", str(photos / a), str(photos / b)])
        assert diff.returncode == 1 and "different people" in diff.stdout, (a, b, diff.stdout, diff.stderr)


def test_identify_names_enrolled_person(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "g.fsg"
    enrolled = facestream(
        [
            "enroll",
            str(gallery),
            str(photos / "macron_1.jpg"),
            str(photos / "ardern_1.jpg"),
            str(photos / "obama_1.jpg"),
            "-q",
        ]
    )
    assert enrolled.returncode == 0, enrolled.stderr
    assert "enrolled macron: 1 photo" in enrolled.stdout
    found = facestream(["identify", str(gallery), str(photos / "ardern_2.jpg")])
    assert found.returncode == 0 and ": ardern " in found.stdout, found.stdout + found.stderr
    stranger = facestream(["identify", str(gallery), str(photos / "sunak_1.jpg")])
    assert ": Unknown (closest: " in stranger.stdout and "below 0.363" in stranger.stdout, stranger.stdout
