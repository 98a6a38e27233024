"""The gallery file: round trip, 0600, atomic replacement, refusal of corrupt or foreign files."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bus.errors import FacestreamError
from match import store
from match.gallery import Gallery

DIM = 32


def make_gallery(
    people: int = 3, per_person: int = 2, model: str = "sface-2021dec", seed: int = 0
) -> Gallery:
    rng = np.random.default_rng(seed)
    g = Gallery.create(model, DIM, 0.42)
    for i in range(people):
        g.add(f"person {i}", rng.standard_normal((per_person, DIM)).astype(np.float32))
    return g


def folder_listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_roundtrip(tmp_path: Path) -> None:
    g = make_gallery()
    g.set_threshold(0.37)
    path = tmp_path / "gallery.npz"
    g.save(path)
    back = Gallery.load(path, expect_model_id="sface-2021dec", expect_dim=DIM)
    assert (back.model_id, back.dim, back.threshold, back.index_kind) == ("sface-2021dec", DIM, 0.37, "flat")
    assert back.names == g.names and back.counts() == g.counts() and len(back) == len(g)
    for name in g.names:
        assert np.array_equal(back.vectors_of(name), g.vectors_of(name))
    assert back.created == g.created and back.updated == g.updated
    probe = g.vectors_of("person 1")[1] + 0.1
    assert back.identify(probe)[0] == g.identify(probe)[0]


def test_file_layout_is_plain_npz_with_json(tmp_path: Path) -> None:
    path = tmp_path / "g.npz"
    make_gallery().save(path)
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["meta.npy", "vectors.npy"]
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        assert npz["vectors"].dtype == np.float32 and npz["vectors"].shape == (6, DIM)
    assert meta["format"] == "facestream-gallery" and meta["format_version"] == 1
    assert meta["names"] == ["person 0"] * 2 + ["person 1"] * 2 + ["person 2"] * 2
    assert {"model_id", "dim", "threshold", "index", "created", "updated"} <= meta.keys()


def test_index_kind_and_empty_gallery_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    Gallery.create("m", 8, 0.5, index="hnsw").save(path)
    back = Gallery.load(path)
    assert back.is_empty and back.index_kind == "hnsw" and back.dim == 8
    assert back.identify(np.ones(8, np.float32))[0].similarity == -1.0


def test_mode_0600_new_and_replaced(tmp_path: Path) -> None:
    path = tmp_path / "g.npz"
    make_gallery().save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    make_gallery(seed=1).save(path)  # replacing must not inherit the old, wider mode
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_creates_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "g.npz"
    make_gallery().save(path)
    assert Gallery.load(path).names == ["person 0", "person 1", "person 2"]


def _fail_midway(fh: io.BufferedWriter, **_: object) -> None:
    fh.write(b"PK\x03\x04 half a zip")
    raise OSError(28, "No space left on device")


def _boom(*_: object, **__: object) -> None:
    raise RuntimeError("power cut")


@pytest.mark.parametrize(
    ("target", "replacement", "error"),
    [
        ("savez", _fail_midway, FacestreamError),  # write fails halfway (disk full)
        ("fsync", _boom, RuntimeError),  # crash after writing, before the rename
        ("replace", _boom, RuntimeError),  # crash at the rename itself
    ],
)
def test_failed_save_keeps_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, replacement: object, error: type
) -> None:
    path = tmp_path / "gallery.npz"
    old = make_gallery(people=2)
    old.save(path)
    before = path.read_bytes()
    bigger = make_gallery(people=5, seed=3)
    owner = store.np if target == "savez" else store.os
    monkeypatch.setattr(owner, target, replacement)
    with pytest.raises(error):
        bigger.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert folder_listing(tmp_path) == ["gallery.npz"]  # no temp file left behind
    assert Gallery.load(path).names == ["person 0", "person 1"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FacestreamError, match=r"not found: enroll faces first with `facestream enroll`"):
        Gallery.load(tmp_path / "nope.npz")


def _corruptions(good: bytes) -> dict[str, bytes]:
    vectors = np.zeros((1, DIM), np.float32)
    vectors[0, 0] = 1

    def npz(**members: object) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **members)  # type: ignore[arg-type]
        return buf.getvalue()

    meta = {"format": "facestream-gallery", "format_version": 1, "model_id": "m", "dim": DIM}
    meta |= {"threshold": 0.4, "index": "flat", "names": ["a"]}
    flipped = bytearray(good)
    flipped[len(good) // 3] ^= 0xFF  # a flipped bit inside the vectors member
    return {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "garbage": os.urandom(4096),
        "bitflip": bytes(flipped),
        "json_text": json.dumps(meta).encode(),
        "npy_not_npz": _npy(vectors),
        "pickle_member": npz(vectors=vectors, meta=np.array([{"x": 1}], dtype=object)),
        "foreign_npz": npz(weights=vectors),
        "wrong_format": npz(vectors=vectors, meta=np.array(json.dumps({**meta, "format": "other"}))),
        "future_version": npz(vectors=vectors, meta=np.array(json.dumps({**meta, "format_version": 9}))),
        "names_mismatch": npz(vectors=vectors, meta=np.array(json.dumps({**meta, "names": ["a", "b"]}))),
        "bad_name": npz(vectors=vectors, meta=np.array(json.dumps({**meta, "names": ["../x"]}))),
        "float64": npz(vectors=vectors.astype(np.float64), meta=np.array(json.dumps(meta))),
        "not_unit": npz(vectors=vectors * 3, meta=np.array(json.dumps(meta))),
        "dim_lie": npz(vectors=vectors, meta=np.array(json.dumps({**meta, "dim": 7}))),
        "meta_not_json": npz(vectors=vectors, meta=np.array("{not json")),
    }


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@pytest.mark.parametrize("kind", list(_corruptions(b"x" * 64).keys()))
def test_corrupt_file_refused_and_untouched(tmp_path: Path, kind: str) -> None:
    good = tmp_path / "good.npz"
    make_gallery().save(good)
    data = _corruptions(good.read_bytes())[kind]
    path = tmp_path / "gallery.npz"
    path.write_bytes(data)
    before = path.stat()
    with pytest.raises(FacestreamError) as info:
        Gallery.load(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == data
    after = path.stat()
    assert (after.st_mtime_ns, after.st_size, after.st_ino) == (
        before.st_mtime_ns,
        before.st_size,
        before.st_ino,
    )
    assert folder_listing(tmp_path) == ["gallery.npz", "good.npz"]


def test_foreign_model_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.npz"
    make_gallery(model="arcface-r100").save(path)
    before = path.read_bytes()
    with pytest.raises(FacestreamError) as info:
        Gallery.load(path, expect_model_id="sface-2021dec")
    msg = str(info.value)
    assert "built with model arcface-r100, this pipeline uses sface-2021dec" in msg
    assert "re-enroll or use another gallery" in msg
    with pytest.raises(FacestreamError, match=r"arcface-r100.*128-d"):
        Gallery.load(path, expect_dim=128)
    assert path.read_bytes() == before
    assert Gallery.load(path, expect_model_id="arcface-r100", expect_dim=DIM).model_id == "arcface-r100"


def test_unreadable_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FacestreamError, match="cannot read gallery"):
        Gallery.load(tmp_path)  # a folder, not a file


def _leftover_temp(folder: Path, gallery_name: str, age_s: float) -> Path:
    """A temp file as a writer killed mid-save leaves it: 0600, half a zip, `age_s` old."""
    tmp = folder / f".{gallery_name}.{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"PK\x03\x04 half a zip")
    when = time.time() - age_s
    os.utime(tmp, (when, when))
    return tmp


def test_save_removes_stale_temps_of_the_same_gallery_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "gallery.npz"
    make_gallery().save(path)
    stale = _leftover_temp(tmp_path, "gallery.npz", 2 * 3600)
    fresh = _leftover_temp(tmp_path, "gallery.npz", 60)  # could be a concurrent writer's
    other = _leftover_temp(tmp_path, "other.npz", 2 * 3600)  # another gallery's: not ours to judge
    prefixed = _leftover_temp(tmp_path, "gallery.npz.bak", 2 * 3600)  # name starts like ours
    stale_dir = tmp_path / f".gallery.npz.{'ab' * 6}.tmp"
    stale_dir.mkdir()  # not a file: left alone
    os.utime(stale_dir, (time.time() - 7200,) * 2)
    assert store.STALE_TEMP_S < 2 * 3600

    with caplog.at_level(logging.INFO, logger="facestream.match.store"):
        make_gallery(seed=1).save(path)

    assert not stale.exists()
    assert fresh.exists() and other.exists() and prefixed.exists() and stale_dir.is_dir()
    assert folder_listing(tmp_path) == sorted(
        ["gallery.npz", fresh.name, other.name, prefixed.name, stale_dir.name]
    )
    removed = [r.getMessage() for r in caplog.records if "stale gallery temp" in r.getMessage()]
    assert len(removed) == 1 and str(stale) in removed[0]
    assert Gallery.load(path).names == ["person 0", "person 1", "person 2"]


_KILLED_WRITER = """
import sys, time
from pathlib import Path
from match import store

class Stuck:  # the writer hangs after creating its temp file, as if killed mid-write
    def __array__(self, *args, **kwargs):
        print("writing", flush=True)
        time.sleep(60)

store.write_gallery_file(Path(sys.argv[1]), {}, Stuck())
"""


def test_temp_of_a_killed_writer_is_removed_by_a_later_save(tmp_path: Path) -> None:
    path = tmp_path / "gallery.npz"
    make_gallery().save(path)
    before = path.read_bytes()
    child = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path)],
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "writing\n"
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    (left,) = [p for p in tmp_path.iterdir() if p.name != "gallery.npz"]
    assert left.name.startswith(".gallery.npz.") and left.name.endswith(".tmp")
    assert stat.S_IMODE(left.stat().st_mode) == 0o600 and path.read_bytes() == before

    make_gallery(seed=1).save(path)  # young temp: could be a live writer's, so kept
    assert left.exists()
    os.utime(left, (time.time() - 2 * 3600,) * 2)
    make_gallery(seed=2).save(path)
    assert folder_listing(tmp_path) == ["gallery.npz"]
