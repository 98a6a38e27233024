"""FAISS indexes over unit vectors: inner product is cosine similarity.

Flat is exact and the default (fine up to about a million rows); HNSW and IVF trade a little
recall for speed on bigger galleries. Indexes are always rebuilt from the stored vectors, never
read from disk, so a gallery file holds only plain arrays.
"""

from __future__ import annotations

import math
from typing import Literal

import faiss
import numpy as np

IndexKind = Literal["flat", "hnsw", "ivf"]
INDEX_KINDS: tuple[IndexKind, ...] = ("flat", "hnsw", "ivf")

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 64
IVF_MIN_POINTS_PER_LIST = 39  # FAISS warns (and clusters poorly) below this


def ivf_lists(rows: int) -> int:
    """sqrt(N) lists, but never fewer than 39 training points per list."""
    return max(1, min(int(math.sqrt(rows)), rows // IVF_MIN_POINTS_PER_LIST))


def ivf_probes(nlist: int) -> int:
    """A quarter of the lists: recall@1 >= 0.95 even on unclustered random vectors."""
    return min(nlist, max(8, nlist // 4))


class VectorIndex:
    """One FAISS index plus how many gallery rows it holds (rows are appended in order)."""

    def __init__(self, kind: IndexKind, dim: int) -> None:
        self.kind = kind
        self.dim = dim
        self.rows = 0
        self.trained_rows = 0  # IVF: rows its coarse quantizer was trained on
        self._index: faiss.Index | None = None
        self._quantizer: faiss.Index | None = None  # kept alive: IVF does not own it

    def build(self, vectors: np.ndarray) -> None:
        self.rows = 0
        self._index = None
        self._quantizer = None
        if self.kind == "flat":
            self._index = faiss.IndexFlatIP(self.dim)
        elif self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.hnsw.efSearch = HNSW_EF_SEARCH
            self._index = index
        else:
            nlist = ivf_lists(len(vectors))
            self._quantizer = faiss.IndexFlatIP(self.dim)
            ivf = faiss.IndexIVFFlat(self._quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            if len(vectors):
                ivf.train(vectors)
            ivf.nprobe = ivf_probes(nlist)
            self.trained_rows = len(vectors)
            self._index = ivf
        self.append(vectors)

    def can_append(self, total_rows: int) -> bool:
        """IVF lists trained on too few rows get unbalanced: retrain once the gallery doubles."""
        if self._index is None:
            return False
        if self.kind == "ivf":
            return self.trained_rows > 0 and total_rows <= 2 * self.trained_rows
        return True

    def append(self, vectors: np.ndarray) -> None:
        assert self._index is not None
        if len(vectors):
            self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.rows += len(vectors)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Similarities and row ids, (n, k) each; missing neighbours have id -1."""
        assert self._index is not None
        sims, ids = self._index.search(queries, k)  # HNSW searches with max(efSearch, k)
        return sims, ids
