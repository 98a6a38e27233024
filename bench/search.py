"""FAISS 1:K search time and recall@1 on galleries of 10k to 1M face-like embeddings.

No public gallery of a million faces ships in a package, so the vectors are drawn to look like
SFace's, measured on real photos here: the mean direction of real embeddings, the similarity of
different people (impostors, about 0.08 +- 0.07) and of two photos of one person (genuine, about
0.73). Identity centres are that mean plus random directions, gallery rows and queries are noisy
views of them; the enrolled real photos join the gallery and their other photos are queried too.
Isotropic noise makes this harder for approximate search than real data, whose variation lies in
fewer directions (pose, light), so the recall here is a lower bound.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from deploy.assets import PHOTOS
from faces.analyzer import FaceAnalyzer
from match.index import (
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
    SKETCH_REFINE,
    IndexKind,
    VectorIndex,
    ivf_lists,
    ivf_probes,
)

log = logging.getLogger("facestream.bench")

DIM = 128
CHUNK = 100_000


@dataclass(frozen=True)
class Shape:
    mean_dir: np.ndarray  # unit vector: where real face embeddings lean
    mean_weight: float  # centres = w * mean_dir + sqrt(1 - w^2) * random direction
    noise: float  # sample = normalise(centre + noise * N(0, I/d))
    impostor: float  # measured mean similarity of different people
    genuine: float  # measured mean similarity of two photos of one person
    real: dict[str, np.ndarray]  # embedding of each real photo


def measure_shape(analyzer: FaceAnalyzer) -> Shape:
    real = {p.stem: analyzer.embed_file(p).vector for p in sorted(PHOTOS.glob("*.jpg"))}
    genuine: list[float] = []
    impostor: list[float] = []
    for a, b in itertools.combinations(sorted(real), 2):
        sim = float(real[a] @ real[b])
        (genuine if a.split("_")[0] == b.split("_")[0] else impostor).append(sim)
    mean = np.mean(np.stack(list(real.values())), axis=0)
    g, i = float(np.mean(genuine)), float(np.mean(impostor))
    # Two views of one centre: cos = 1 / (1 + noise^2) = g. Views of two centres: cos ~ g * w^2
    # (random directions in 128-d are nearly orthogonal), which must equal the impostor mean i.
    noise = float(np.sqrt(1.0 / g - 1.0))
    weight = float(np.sqrt(min(max(i / g, 0.0), 1.0)))
    return Shape((mean / np.linalg.norm(mean)).astype(np.float32), weight, noise, i, g, real)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _views(shape: Shape, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(centres.shape, dtype=np.float32) / np.float32(np.sqrt(DIM))
    return _unit(centres + np.float32(shape.noise) * noise)


def _centres(shape: Shape, n: int, rng: np.random.Generator) -> np.ndarray:
    directions = _unit(rng.standard_normal((n, DIM), dtype=np.float32))
    w = np.float32(shape.mean_weight)
    return _unit(w * shape.mean_dir + np.float32(np.sqrt(1 - w * w)) * directions)


@dataclass(frozen=True)
class Queries:
    vectors: np.ndarray  # (n, DIM)
    truth: np.ndarray  # gallery row of the query's person, -1 for people not enrolled


def make_gallery(shape: Shape, size: int, queries: int, seed: int = 0) -> tuple[np.ndarray, Queries]:
    """Gallery rows (real people first) and queries: `queries` views of enrolled people, a
    quarter as many of people not enrolled, and the other real photos of enrolled people."""
    rng = np.random.default_rng(seed)
    enrolled = [k for k in sorted(shape.real) if k.endswith("_1")]
    rows = np.empty((size, DIM), np.float32)
    rows[: len(enrolled)] = np.stack([shape.real[k] for k in enrolled])
    picked = np.sort(rng.choice(np.arange(len(enrolled), size), queries, replace=False))
    query_centres = np.empty((queries, DIM), np.float32)
    for start in range(len(enrolled), size, CHUNK):
        n = min(CHUNK, size - start)
        centres = _centres(shape, n, rng)
        rows[start : start + n] = _views(shape, centres, rng)
        inside = (picked >= start) & (picked < start + n)
        query_centres[inside] = centres[picked[inside] - start]
    strangers = max(1, queries // 4)
    real_q = [(k, enrolled.index(k.split("_")[0] + "_1")) for k in sorted(shape.real) if not k.endswith("_1")]
    real_q = [(k, row) for k, row in real_q if k.split("_")[0] + "_1" in enrolled]
    parts = [_views(shape, query_centres, rng), _views(shape, _centres(shape, strangers, rng), rng)]
    if real_q:
        parts.append(np.stack([shape.real[k] for k, _ in real_q]))
    truth = np.concatenate(
        [picked, np.full(strangers, -1, np.int64), np.array([r for _, r in real_q], dtype=np.int64)]
    )
    return rows, Queries(np.concatenate(parts).astype(np.float32), truth)


def _time_queries(index: VectorIndex, queries: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """ms per query, one query at a time (what match does per frame); top-1 rows and similarities."""
    top = np.empty(len(queries), np.int64)
    sims = np.empty(len(queries), np.float32)
    started = time.perf_counter()
    for i in range(len(queries)):
        found_sims, found = index.search(queries[i : i + 1], 1)
        top[i], sims[i] = found[0, 0], found_sims[0, 0]
    return (time.perf_counter() - started) / len(queries) * 1000, top, sims


def _sweep(
    kind: IndexKind, size: int, hnsw_ef: tuple[int, ...], ivf_nprobe: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Search settings to try on one built index; the one match uses is marked."""
    if kind == "hnsw":
        efs = sorted({HNSW_EF_SEARCH, *hnsw_ef})
        return [
            {
                "M": HNSW_M,
                "ef_construction": HNSW_EF_CONSTRUCTION,
                "ef_search": ef,
                "match_default": ef == HNSW_EF_SEARCH,
            }
            for ef in efs
        ]
    if kind == "ivf":
        nlist = ivf_lists(size)
        probes = sorted({ivf_probes(nlist), *(p for p in ivf_nprobe if p <= nlist)})
        return [{"nlist": nlist, "nprobe": p, "match_default": p == ivf_probes(nlist)} for p in probes]
    if kind == "sketch":
        return [{"refine": r, "match_default": r == SKETCH_REFINE} for r in sorted({SKETCH_REFINE, 64})]
    return [{"match_default": True}]


def bench_size(
    shape: Shape,
    size: int,
    queries: int,
    hnsw_ef: tuple[int, ...],
    ivf_nprobe: tuple[int, ...],
    threads: int,
    threshold: float,
    kinds: tuple[IndexKind, ...] = ("flat", "sketch", "ivf", "hnsw"),
) -> list[dict[str, Any]]:
    """Build each index kind as match does (match/index.py) and time its queries.

    recall_at_1: enrolled people's queries whose top-1 is exact search's top-1; identified: whose
    top-1 is their own row; same_decision: all queries (strangers too) named as exact search
    names them at `threshold` (a name or Unknown).
    """
    rows, q = make_gallery(shape, size, queries)
    known = q.truth >= 0
    faiss.omp_set_num_threads(threads)
    out: list[dict[str, Any]] = []
    exact: tuple[np.ndarray, np.ndarray] | None = None
    order: list[IndexKind] = ["flat", *(k for k in kinds if k != "flat")]  # flat first: exact
    for kind in order:
        index = VectorIndex(kind, DIM)
        started = time.perf_counter()
        index.build(rows)
        build_s = time.perf_counter() - started
        log.info("gallery %d: %s built in %.1f s", size, kind, build_s)
        for params in _sweep(kind, size, hnsw_ef, ivf_nprobe):
            index.tune(
                ef_search=params.get("ef_search"), nprobe=params.get("nprobe"), refine=params.get("refine")
            )
            ms, top, sims = _time_queries(index, q.vectors)
            if exact is None:
                exact = (top, sims)
            decision = np.where(sims >= threshold, top, -1)
            exact_decision = np.where(exact[1] >= threshold, exact[0], -1)
            out.append(
                {
                    "gallery": size,
                    "index": kind,
                    **params,
                    "build_s": round(build_s, 2),
                    "ms_per_query": round(ms, 3),
                    "recall_at_1": round(float(np.mean(top[known] == exact[0][known])), 4),
                    "identified": round(float(np.mean(top[known] == q.truth[known])), 4),
                    "same_decision": round(float(np.mean(decision == exact_decision)), 4),
                    "queries": int(known.sum()),
                    "strangers": int((~known).sum()),
                    "threads": threads,
                }
            )
        del index
    return out
