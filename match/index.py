"""FAISS indexes over unit vectors: inner product is cosine similarity.

Flat is exact and the default (fine up to about a million rows); HNSW and IVF trade a little
recall for speed on bigger galleries. Sketch (LSH) keeps one sign bit per dimension of a random
rotation (16 bytes a face), scans those by Hamming distance and re-ranks the best
SKETCH_REFINE x k exactly: on face-like vectors (near-isotropic, where graphs and clusters
struggle) it kept recall@1 at 1.0 on a million rows at a few ms per query (docs/performance.md).
Indexes are always rebuilt from the stored vectors, never read from disk, so a gallery file
holds only plain arrays.
"""

from __future__ import annotations

import math
from typing import Literal

import faiss
import numpy as np

IndexKind = Literal["flat", "hnsw", "ivf", "sketch"]
INDEX_KINDS: tuple[IndexKind, ...] = ("flat", "hnsw", "ivf", "sketch")

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 64
IVF_MIN_POINTS_PER_LIST = 39  # FAISS warns (and clusters poorly) below this
SKETCH_REFINE = 256  # candidates re-ranked exactly per wanted neighbour
SKETCH_MIN_TRAIN = 256  # rows needed to set each bit's threshold at its median
SKETCH_TRAIN_ROWS = 200_000  # at most about this many rows are used for the medians


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

    @property
    def lists(self) -> int | None:
        """IVF: how many inverted lists the built index has (None for other kinds or unbuilt)."""
        nlist = getattr(self._index, "nlist", None)
        return None if nlist is None else int(nlist)

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
        elif self.kind == "sketch":
            # Rotate, then one bit per dimension: above or below that dimension's median over the
            # gallery (face embeddings share a mean direction; plain sign bits would waste on it).
            medians = len(vectors) >= SKETCH_MIN_TRAIN
            sketch = faiss.IndexLSH(self.dim, self.dim, True, medians)
            sample = vectors[:: max(1, len(vectors) // SKETCH_TRAIN_ROWS)] if medians else vectors[:0]
            sketch.train(np.ascontiguousarray(sample, dtype=np.float32))
            self.trained_rows = len(vectors) if medians else 0
            refine = faiss.IndexRefineFlat(sketch)
            refine.k_factor = SKETCH_REFINE
            self._quantizer = sketch  # kept alive: the refine index does not own it
            self._index = refine
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
        """IVF lists (sketch medians) from too few rows fit badly: retrain once the gallery doubles."""
        if self._index is None:
            return False
        if self.kind == "ivf":
            return self.trained_rows > 0 and total_rows <= 2 * self.trained_rows
        if self.kind == "sketch":
            return total_rows <= max(2 * self.trained_rows, SKETCH_MIN_TRAIN - 1)
        return True

    def append(self, vectors: np.ndarray) -> None:
        assert self._index is not None
        if len(vectors):
            self._index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.rows += len(vectors)

    def tune(
        self, ef_search: int | None = None, nprobe: int | None = None, refine: int | None = None
    ) -> None:
        """Search-time accuracy/speed knobs: HNSW's efSearch, IVF's nprobe, sketch's re-rank factor."""
        if self.kind == "sketch" and refine is not None and self._index is not None:
            self._index.k_factor = int(refine)  # type: ignore[attr-defined]
        if self.kind == "hnsw" and ef_search is not None and self._index is not None:
            self._index.hnsw.efSearch = int(ef_search)  # type: ignore[attr-defined]
        if self.kind == "ivf" and nprobe is not None and self._index is not None:
            self._index.nprobe = int(nprobe)  # type: ignore[attr-defined]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Similarities and row ids, (n, k) each; missing neighbours have id -1."""
        assert self._index is not None
        sims, ids = self._index.search(queries, k)  # HNSW searches with max(efSearch, k)
        if self.kind == "sketch":  # re-ranked by squared L2, which for unit vectors is 2 - 2 cos
            sims = np.where(ids >= 0, 1.0 - sims / 2.0, sims).astype(np.float32)
        return sims, ids
