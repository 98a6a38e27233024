"""The gallery file: one .npz (no pickle) with a float32 `vectors` member and a JSON `meta` member.

Faces are biometric data: the file is created 0600 and replaced atomically, so a crash or a full
disk leaves the previous gallery intact, and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import secrets
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from bus.errors import FacestreamError

FORMAT = "facestream-gallery"
FORMAT_VERSION = 1
MAX_META_CHARS = 256 << 20
_MEMBERS = {"vectors.npy", "meta.npy"}
_TOKEN_BYTES = 6
# A temp file older than this was left by a writer that was killed mid-save (SIGKILL, power cut).
# Younger ones may belong to a concurrent writer that is still writing or about to rename, so they
# are never touched: a save takes well under a second, an hour is far beyond any live writer.
STALE_TEMP_S = 3600.0

log = logging.getLogger("facestream.match.store")


def write_gallery_file(path: Path, meta: dict[str, Any], vectors: np.ndarray) -> None:
    """Write temp file (0600) in the same folder, fsync, rename over `path`, fsync the folder."""
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FacestreamError(f"cannot create the gallery folder {folder}: {exc.strerror}") from exc
    text = json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION, **meta}, ensure_ascii=False)
    tmp = folder / f".{path.name}.{secrets.token_hex(_TOKEN_BYTES)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise FacestreamError(f"cannot write gallery {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, vectors=np.ascontiguousarray(vectors, dtype=np.float32), meta=np.array(text))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise FacestreamError(f"cannot write gallery {path}: {exc.strerror or exc}") from exc
        raise
    _fsync_folder(folder)
    _remove_stale_temps(path)


def _remove_stale_temps(path: Path) -> None:
    """Delete temp files of this gallery (`.{name}.<hex>.tmp`) left by killed writers; never raise."""
    # Exact pattern, so another gallery's temps (e.g. of `g.npz.bak`) are never matched.
    pattern = re.compile(re.escape(f".{path.name}.") + f"[0-9a-f]{{{2 * _TOKEN_BYTES}}}" + r"\.tmp")
    cutoff = time.time() - STALE_TEMP_S
    try:
        with os.scandir(path.parent) as it:
            entries = list(it)
    except OSError:
        return
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                log.info("removed stale gallery temp file %s (left by an interrupted save)", entry.path)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _damage(exc: Exception) -> str:
    """What a reading error says about the file, in words (never a Python exception name)."""
    if isinstance(exc, zipfile.BadZipFile):
        return "not a zip archive (truncated, or another format)"
    if isinstance(exc, zlib.error | EOFError):
        return "its compressed data is damaged"
    if isinstance(exc, KeyError):
        return "a member is missing"
    return "its arrays cannot be read"


def read_gallery_file(path: Path) -> tuple[dict[str, Any], np.ndarray]:
    """Return (metadata, vectors); read only, never write; any defect is one FacestreamError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise FacestreamError(
            f"gallery {path} not found: enroll faces first with `facestream enroll`"
        ) from exc
    except OSError as exc:
        raise FacestreamError(f"cannot read gallery {path}: {exc.strerror}") from exc
    bad = f"{path} is not a facestream gallery (corrupt or another kind of file)"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if set(zf.namelist()) != _MEMBERS:
                raise FacestreamError(f"{bad}: unexpected members {sorted(zf.namelist())}")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta_arr = npz["meta"]
            vectors = npz["vectors"]
    except FacestreamError:
        raise
    except Exception as exc:  # zipfile, zlib, numpy header errors all mean the same to the user
        raise FacestreamError(f"{bad}: {_damage(exc)}") from exc
    if meta_arr.dtype.kind != "U" or meta_arr.shape != () or len(str(meta_arr)) > MAX_META_CHARS:
        raise FacestreamError(f"{bad}: metadata member is not a JSON string")
    try:
        meta = json.loads(str(meta_arr))
    except json.JSONDecodeError as exc:
        raise FacestreamError(f"{bad}: metadata is not JSON") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise FacestreamError(f"{bad}: format is not {FORMAT!r}")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise FacestreamError(
            f"gallery {path} has format_version {version!r}; this facestream reads {FORMAT_VERSION}"
        )
    if vectors.dtype != np.float32 or vectors.ndim != 2:
        raise FacestreamError(f"{bad}: vectors are {vectors.dtype} {vectors.shape}, not float32 (n, dim)")
    return meta, vectors
