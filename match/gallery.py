"""Enrolled faces: L2-normalised embeddings with a name per row, searched with FAISS.

A gallery remembers the model that made its vectors; vectors of another model are refused
rather than silently compared (their cosine similarities would be meaningless).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bus.errors import FacestreamError
from match.index import INDEX_KINDS, IndexKind, VectorIndex
from match.store import read_gallery_file, write_gallery_file

UNKNOWN = "Unknown"
MAX_NAME_CHARS = 128
_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Identity:
    """The answer for one query vector."""

    name: str  # best_name, or "Unknown" below the threshold or in an empty gallery
    similarity: float  # cosine similarity to the best match; -1.0 in an empty gallery
    best_name: str | None  # the closest person even below the threshold (None: empty gallery)
    candidates: list[tuple[str, float]] = field(default_factory=list)  # top-k persons, best first

    @property
    def is_known(self) -> bool:
        return self.name != UNKNOWN


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise FacestreamError("a person's name must be a non-empty string")
    if name != name.strip() or len(name) > MAX_NAME_CHARS or _BAD_NAME.search(name):
        raise FacestreamError(
            f"invalid name {name!r}: no path separators, control characters or surrounding spaces, "
            f"at most {MAX_NAME_CHARS} characters"
        )
    if name.lower() == UNKNOWN.lower():
        raise FacestreamError(f"{UNKNOWN!r} is reserved for faces below the threshold; pick another name")
    return name


def _similarity(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1.0 <= float(value) <= 1.0:
        raise FacestreamError(f"{what} must be a cosine similarity between -1 and 1, got {value!r}")
    return float(value)


def check_threshold(value: object) -> float:
    """A threshold that names people: above 0 (at 0 or below nearly every stranger is named
    after somebody), at most 1."""
    threshold = _similarity(value, "threshold")
    if threshold <= 0.0:
        raise FacestreamError(
            f"threshold must be above 0 (at {threshold:g} nearly every stranger gets a name), got {value!r}"
        )
    return threshold


def _as_matrix(vectors: object, dim: int, what: str) -> np.ndarray:
    """Validate and L2-normalise: (dim,) or (n, dim) real floats, finite, non-zero."""
    if not isinstance(vectors, np.ndarray):
        raise FacestreamError(f"{what} must be a numpy array, got {type(vectors).__name__}")
    if vectors.dtype.kind != "f":
        raise FacestreamError(f"{what} must be floating point (float32), got {vectors.dtype}")
    mat = vectors.reshape(1, -1) if vectors.ndim == 1 else vectors
    if mat.ndim != 2 or mat.shape[1] != dim:
        raise FacestreamError(f"{what} must have shape ({dim},) or (n, {dim}), got {vectors.shape}")
    mat = mat.astype(np.float32)
    if not np.isfinite(mat).all():
        raise FacestreamError(f"{what} hold NaN or infinity")
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    if len(mat) and float(norms.min()) < 1e-12:
        raise FacestreamError(f"{what} include an all-zero vector, which has no direction")
    return np.ascontiguousarray(mat / np.maximum(norms, 1e-12), dtype=np.float32)


class Gallery:
    """Rows of (name, unit vector) for one embedding model, with a similarity threshold."""

    def __init__(self, model_id: str, dim: int, threshold: float, index: IndexKind = "flat") -> None:
        if not isinstance(model_id, str) or not model_id:
            raise FacestreamError("a gallery needs the model_id of the model that made its vectors")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise FacestreamError(f"embedding dim must be a positive integer, got {dim!r}")
        if index not in INDEX_KINDS:
            raise FacestreamError(f"index must be one of {', '.join(INDEX_KINDS)}, got {index!r}")
        self.model_id = model_id
        self.dim = dim
        self.threshold = check_threshold(threshold)
        self.index_kind: IndexKind = index
        self.created = _now()
        self.updated = self.created
        self._buffer = np.zeros((0, dim), np.float32)  # grows by doubling; rows [:len(self)] used
        self._names: list[str] = []
        self._counts: dict[str, int] = {}  # rows per person, kept in step with _names
        self._rows: dict[str, list[int]] | None = None  # name -> its rows, built when first asked
        self._index = VectorIndex(index, dim)
        self._stale = True  # the FAISS index must be rebuilt before the next search

    @classmethod
    def create(cls, model_id: str, dim: int, threshold: float, index: IndexKind = "flat") -> Gallery:
        return cls(model_id, dim, threshold, index)

    # --- contents ---------------------------------------------------------------------------
    @property
    def index(self) -> VectorIndex:
        """The FAISS index over the vectors (it may be stale until the next search)."""
        return self._index

    @property
    def _vectors(self) -> np.ndarray:
        return self._buffer[: len(self._names)]

    def __len__(self) -> int:
        return len(self._names)

    @property
    def is_empty(self) -> bool:
        return not self._names

    @property
    def names(self) -> list[str]:
        return sorted(self._counts)

    def counts(self) -> dict[str, int]:
        return dict(sorted(self._counts.items()))

    def _rows_of(self, name: str) -> list[int]:
        if self._rows is None:
            rows: dict[str, list[int]] = {}
            for i, n in enumerate(self._names):
                rows.setdefault(n, []).append(i)
            self._rows = rows
        return self._rows.get(name, [])

    def vectors_of(self, name: str) -> np.ndarray:
        return self._vectors[self._rows_of(name)].copy()

    def add(self, name: str, vectors: np.ndarray) -> int:
        """Enroll one or more vectors of one person; returns how many rows were added."""
        check_name(name)
        mat = _as_matrix(vectors, self.dim, "embeddings to enroll")
        if len(mat) == 0:
            raise FacestreamError(f"no embeddings given for {name!r}")
        used = len(self._names)
        if used + len(mat) > len(self._buffer):
            grown = np.zeros((max(2 * len(self._buffer), used + len(mat), 64), self.dim), np.float32)
            grown[:used] = self._buffer[:used]
            self._buffer = grown
        self._buffer[used : used + len(mat)] = mat
        self._names.extend([name] * len(mat))
        self._counts[name] = self._counts.get(name, 0) + len(mat)
        self._rows = None
        if not self._stale and self._index.can_append(len(self._names)):
            self._index.append(mat)
        else:
            self._stale = True
        return len(mat)

    def remove(self, name: str) -> int:
        keep = [i for i, n in enumerate(self._names) if n != name]
        removed = len(self._names) - len(keep)
        if removed:
            self._buffer = np.ascontiguousarray(self._vectors[keep])
            self._names = [self._names[i] for i in keep]
            del self._counts[name]
            self._rows = None
            self._stale = True
        return removed

    def set_threshold(self, value: float) -> None:
        self.threshold = check_threshold(value)

    def with_index(self, kind: IndexKind) -> Gallery:
        """The same rows, names, threshold and dates, searched with another kind of index.

        The kind is fixed when a gallery is made (its FAISS index is built for it), so changing
        it means a new gallery; this one is left as it was. The new index is built from the
        vectors at the first search, as after a load.
        """
        other = Gallery(self.model_id, self.dim, self.threshold, kind)
        other._buffer = self._vectors.copy()
        other._names = list(self._names)
        other._counts = dict(self._counts)
        other.created, other.updated = self.created, self.updated
        return other

    # --- search ------------------------------------------------------------------------------
    def identify(self, vectors: np.ndarray, threshold: float | None = None, k: int = 1) -> list[Identity]:
        """1:K: the closest enrolled person for each query row (Unknown below the threshold)."""
        limit = self.threshold if threshold is None else _similarity(threshold, "threshold")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise FacestreamError(f"k must be a positive integer, got {k!r}")
        queries = _as_matrix(vectors, self.dim, "query embeddings")
        if self.is_empty:
            return [Identity(UNKNOWN, -1.0, None, []) for _ in range(len(queries))]
        if len(queries) == 0:
            return []
        self._ensure_index()
        # Enough rows that the k best *persons* are among them, even if one person has many rows.
        per_person = max(self._counts.values())
        rows = min(len(self._names), (k - 1) * per_person + 1)
        sims, ids = self._index.search(queries, rows)
        out = []
        for row_sims, row_ids in zip(sims, ids, strict=True):
            best: dict[str, float] = {}
            for sim, idx in zip(row_sims.tolist(), row_ids.tolist(), strict=True):
                if idx < 0:
                    continue
                person = self._names[idx]
                if person not in best:  # results come best first
                    best[person] = max(-1.0, min(1.0, float(sim)))
            candidates = list(best.items())[:k]
            if not candidates:
                out.append(Identity(UNKNOWN, -1.0, None, []))
                continue
            top, score = candidates[0]
            out.append(Identity(top if score >= limit else UNKNOWN, score, top, candidates))
        return out

    @staticmethod
    def verify(a: np.ndarray, b: np.ndarray) -> float:
        """1:1: cosine similarity of two embeddings."""
        for v, what in ((a, "first"), (b, "second")):
            if not isinstance(v, np.ndarray) or v.ndim != 1:
                raise FacestreamError(f"verify needs two 1-D embeddings; the {what} is not one")
        if a.shape != b.shape:
            raise FacestreamError(f"verify needs embeddings of one size, got {a.shape} and {b.shape}")
        ua = _as_matrix(a, a.shape[0], "first embedding")[0]
        ub = _as_matrix(b, b.shape[0], "second embedding")[0]
        return max(-1.0, min(1.0, float(np.dot(ua.astype(np.float64), ub.astype(np.float64)))))

    def verify_name(self, name: str, vector: np.ndarray) -> float:
        """1:1 against an enrolled person: the best similarity over that person's vectors."""
        rows = self._rows_of(name)
        if not rows:
            raise FacestreamError(f"{name!r} is not enrolled in this gallery")
        query = _as_matrix(vector, self.dim, "embedding to verify")
        if len(query) != 1:
            raise FacestreamError("verify_name takes one embedding")
        return max(-1.0, min(1.0, float((self._vectors[rows] @ query[0]).max())))

    def _ensure_index(self) -> None:
        if self._stale:
            self._index.build(self._vectors)
            self._stale = False

    # --- persistence -------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the whole gallery atomically to one 0600 file."""
        self.updated = _now()
        meta = {
            "model_id": self.model_id,
            "dim": self.dim,
            "threshold": self.threshold,
            "index": self.index_kind,
            "names": list(self._names),
            "created": self.created,
            "updated": self.updated,
        }
        write_gallery_file(Path(path), meta, self._vectors)

    @classmethod
    def load(
        cls,
        path: Path,
        expect_model_id: str | None = None,
        expect_dim: int | None = None,
    ) -> Gallery:
        """Read a gallery file (never writing it) and refuse one built for another model."""
        meta, vectors = read_gallery_file(Path(path))
        gallery = cls._from_meta(Path(path), meta, vectors)
        if expect_model_id is not None and gallery.model_id != expect_model_id:
            raise FacestreamError(
                f"gallery {path} was built with model {gallery.model_id}, this pipeline uses "
                f"{expect_model_id}; re-enroll or use another gallery"
            )
        if expect_dim is not None and gallery.dim != expect_dim:
            raise FacestreamError(
                f"gallery {path} holds {gallery.dim}-d vectors of model {gallery.model_id}, this "
                f"pipeline's model gives {expect_dim}-d; re-enroll or use another gallery"
            )
        return gallery

    @classmethod
    def _from_meta(cls, path: Path, meta: dict[str, Any], vectors: np.ndarray) -> Gallery:
        bad = f"gallery {path} has invalid metadata"
        model_id, dim, names = meta.get("model_id"), meta.get("dim"), meta.get("names")
        threshold, index = meta.get("threshold"), meta.get("index", "flat")
        if not isinstance(model_id, str) or not model_id:
            raise FacestreamError(f"{bad}: model_id")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0 or vectors.shape[1] != dim:
            raise FacestreamError(f"{bad}: dim {dim!r} does not match vectors {vectors.shape}")
        if not isinstance(names, list) or len(names) != len(vectors):
            raise FacestreamError(f"{bad}: names do not match the {len(vectors)} vectors")
        if index not in INDEX_KINDS:
            raise FacestreamError(f"{bad}: index {index!r}")
        if not isinstance(threshold, int | float) or isinstance(threshold, bool):
            raise FacestreamError(f"{bad}: threshold")
        try:
            gallery = cls(model_id, dim, float(threshold), index)
            for name in names:
                check_name(name)
        except FacestreamError as exc:
            raise FacestreamError(f"{bad}: {exc}") from exc
        norms = np.linalg.norm(vectors, axis=1) if len(vectors) else np.ones(0)
        if not np.isfinite(vectors).all() or not np.all(np.abs(norms - 1.0) < 1e-3):
            raise FacestreamError(f"{bad}: vectors are not finite unit vectors")
        gallery._buffer = np.array(vectors, dtype=np.float32, order="C")
        gallery._names = list(names)
        for name in names:
            gallery._counts[name] = gallery._counts.get(name, 0) + 1
        gallery.created = str(meta.get("created", gallery.created))
        gallery.updated = str(meta.get("updated", gallery.updated))
        return gallery


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime_ns) of a file, None when it is missing: cheap change detection."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


__all__ = ["UNKNOWN", "Gallery", "Identity", "check_name", "file_signature"]
