"""`facestream enroll --index`: pick a new gallery's index kind, or convert an existing gallery."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from bus.errors import FacestreamError
from deploy.cli import INDEX_KINDS as CLI_KINDS
from faces.enroll import convert_gallery
from match.gallery import Gallery
from match.index import INDEX_KINDS
from tests.conftest import facestream

PEOPLE = ["ardern", "biden", "macron", "obama", "sunak"]


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc.stdout


def _one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("facestream: error:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def _same_rows(a: Gallery, b: Gallery) -> None:
    assert a.counts() == b.counts() and (a.model_id, a.threshold) == (b.model_id, b.threshold)
    for name in a.names:
        np.testing.assert_array_equal(a.vectors_of(name), b.vectors_of(name))


def test_cli_offers_every_index_kind() -> None:
    assert tuple(CLI_KINDS) == INDEX_KINDS


def test_enroll_with_index_then_convert_without_photos(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "g.fsg"
    out = _ok(facestream(["enroll", str(gallery), str(photos), "--index", "sketch", "-q"]))
    assert "converted" not in out and "enrolled obama: 3 photos" in out
    enrolled = Gallery.load(gallery)
    assert enrolled.index_kind == "sketch" and enrolled.names == PEOPLE

    out = _ok(facestream(["enroll", str(gallery), "--index", "hnsw"]))
    assert out.splitlines() == [f"gallery {gallery}: index converted from sketch to hnsw"]
    converted = Gallery.load(gallery)
    assert converted.index_kind == "hnsw" and gallery.stat().st_mode & 0o777 == 0o600
    _same_rows(converted, enrolled)

    before = gallery.stat().st_mtime_ns
    out = _ok(facestream(["enroll", str(gallery), "--index", "hnsw"]))
    assert "already hnsw" in out and gallery.stat().st_mtime_ns == before

    found = _ok(facestream(["identify", str(gallery), str(photos / "ardern_2.jpg")]))
    assert ": ardern " in found, found


def test_enroll_keeps_or_converts_the_kind_of_an_existing_gallery(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "g.fsg"
    _ok(facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "--index", "ivf", "-q"]))
    _ok(facestream(["enroll", str(gallery), str(photos / "biden_1.jpg"), "-q"]))  # no --index: kept
    assert Gallery.load(gallery).index_kind == "ivf"
    out = _ok(facestream(["enroll", str(gallery), str(photos / "sunak_1.jpg"), "--index", "flat", "-q"]))
    assert f"gallery {gallery}: index converted from ivf to flat" in out.splitlines()
    after = Gallery.load(gallery)
    assert after.index_kind == "flat" and after.names == ["biden", "macron", "sunak"]


def test_enroll_without_photos_or_index_is_one_line_error(tmp_path: Path) -> None:
    gallery = tmp_path / "g.fsg"
    _one_line_error(facestream(["enroll", str(gallery)]), "nothing to enroll")
    _one_line_error(facestream(["enroll", str(gallery), "--index", "sketch"]), "nothing to convert")
    assert not gallery.exists()
    bad = facestream(["enroll", str(gallery), "--index", "annoy"])
    assert bad.returncode == 2 and "invalid choice: 'annoy'" in bad.stderr


def test_convert_gallery_in_place(tmp_path: Path) -> None:
    path = tmp_path / "g.fsg"
    rng = np.random.default_rng(3)
    original = Gallery.create("some-model", 8, 0.4)
    original.add("alice", rng.standard_normal((3, 8)).astype(np.float32))
    original.save(path)
    assert convert_gallery(path, "sketch") == "flat"
    assert convert_gallery(path, "sketch") is None
    loaded = Gallery.load(path)
    assert loaded.index_kind == "sketch" and [p.name for p in tmp_path.iterdir()] == ["g.fsg"]
    _same_rows(loaded, original)
    with pytest.raises(FacestreamError, match="not found"):
        convert_gallery(tmp_path / "missing.fsg", "flat")


def test_camera_enrollment_converts_too(tmp_path: Path, photos: Path) -> None:
    from deploy.assets import carphone_video

    gallery = tmp_path / "g.fsg"
    _ok(facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]))
    out = _ok(
        facestream(
            [
                "enroll",
                str(gallery),
                "--camera",
                str(carphone_video()),
                "--name",
                "driver",
                "--frames",
                "30",
                "--index",
                "sketch",
            ]
        )
    )
    assert f"gallery {gallery}: index converted from flat to sketch" in out.splitlines()
    after = Gallery.load(gallery)
    assert after.index_kind == "sketch" and after.names == ["driver", "macron"]
