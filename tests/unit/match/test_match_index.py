"""Approximate indexes (HNSW, IVF) against exact search on 20k random unit vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from match.gallery import Gallery
from match.index import ivf_lists

N, DIM, QUERIES = 20_000, 128, 1000


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(42)
    base = rng.standard_normal((N, DIM)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    source = rng.choice(N, QUERIES, replace=False)
    # Noisy copies at cosine ~0.7 from their source: about as close as two photos of one person.
    queries = base[source] + 0.09 * rng.standard_normal((QUERIES, DIM)).astype(np.float32)
    names = [f"p{i // 4}" for i in range(N)]  # 5000 people with 4 vectors each
    return base, queries, names


def build(kind: str, data: tuple[np.ndarray, np.ndarray, list[str]]) -> Gallery:
    base, _, names = data
    g = Gallery.create("random", DIM, 0.5, index=kind)  # type: ignore[arg-type]
    for start in range(0, N, 4):
        g.add(names[start], base[start : start + 4])
    return g


@pytest.fixture(scope="module")
def exact(data: tuple[np.ndarray, np.ndarray, list[str]]) -> list[str | None]:
    base, queries, names = data
    found = build("flat", data).identify(queries)
    # Flat is exact: it agrees with brute force.
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    truth = [names[i] for i in (q @ base.T).argmax(axis=1)]
    assert [f.best_name for f in found] == truth
    return [f.best_name for f in found]


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_recall_at_1_vs_flat(
    kind: str, data: tuple[np.ndarray, np.ndarray, list[str]], exact: list[str | None]
) -> None:
    g = build(kind, data)
    found = g.identify(data[1])
    recall = np.mean([f.best_name == e for f, e in zip(found, exact, strict=True)])
    assert recall >= 0.95, f"{kind} recall@1 {recall:.3f}"


def test_ivf_survives_removal_growth_and_reload(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray, list[str]]
) -> None:
    base, _, _ = data
    g = Gallery.create("random", DIM, 0.5, index="ivf")
    g.add("first", base[:100])  # trained on 100 rows: 2 lists
    assert g.identify(base[5])[0].name == "first"
    g.add("second", base[100:5000])  # grows 50x: the index must be retrained, not appended to
    assert g.identify(base[4000])[0].name == "second"
    assert g.index.trained_rows == 5000 and g.index.lists == ivf_lists(5000)
    assert g.remove("first") == 100
    assert g.identify(base[50])[0].best_name == "second"
    path = tmp_path / "ivf.npz"
    g.save(path)
    back = Gallery.load(path)
    assert back.index_kind == "ivf" and back.identify(base[4000])[0].name == "second"
