"""Changing a gallery's index kind keeps every row and name and the answers of exact search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bus.errors import FacestreamError
from match.gallery import Gallery
from match.index import INDEX_KINDS, IndexKind

DIM, ROWS, QUERIES = 128, 200, 100


def _unit(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """200 random unit rows (person i owns row i) and noisy views of some of them as queries."""
    rng = np.random.default_rng(11)
    rows = _unit(rng.standard_normal((ROWS, DIM)))
    truth = rng.choice(ROWS, QUERIES, replace=False)
    queries = _unit(rows[truth] + 0.08 * rng.standard_normal((QUERIES, DIM)))
    return rows, queries, truth


def _flat_gallery(rows: np.ndarray) -> Gallery:
    g = Gallery.create("sface-test", DIM, 0.363)
    for i, row in enumerate(rows):
        g.add(f"p{i // 2}", row)  # two rows per person
    return g


def test_conversion_keeps_rows_names_and_settings_and_leaves_the_original() -> None:
    rows, _, _ = _data()
    flat = _flat_gallery(rows)
    sketch = flat.with_index("sketch")
    assert (flat.index_kind, sketch.index_kind) == ("flat", "sketch")
    assert (sketch.model_id, sketch.dim, sketch.threshold) == (flat.model_id, flat.dim, flat.threshold)
    assert (sketch.created, sketch.updated) == (flat.created, flat.updated)
    assert sketch.counts() == flat.counts() and len(sketch) == ROWS
    for name in flat.names:
        np.testing.assert_array_equal(sketch.vectors_of(name), flat.vectors_of(name))
    sketch.add("newcomer", rows[0])  # the copy is its own: the original does not change
    sketch.remove("p0")
    assert len(flat) == ROWS and "newcomer" not in flat.names and "p0" in flat.names


@pytest.mark.parametrize("kind", [k for k in INDEX_KINDS if k != "flat"])
def test_converted_gallery_answers_as_exact_search(kind: IndexKind) -> None:
    rows, queries, truth = _data()
    flat = _flat_gallery(rows)
    converted = flat.with_index(kind)
    exact, found = flat.identify(queries, k=3), converted.identify(queries, k=3)
    assert np.mean([f.best_name == f"p{t // 2}" for f, t in zip(exact, truth, strict=True)]) == 1.0
    recall = np.mean([f.best_name == e.best_name for f, e in zip(found, exact, strict=True)])
    assert recall >= 0.99, recall
    if kind == "sketch":  # 200 rows all fit in the exact re-rank: the very same answers
        assert [f.name for f in found] == [e.name for e in exact]
        for f, e in zip(found, exact, strict=True):
            assert [n for n, _ in f.candidates] == [n for n, _ in e.candidates]
            np.testing.assert_allclose([s for _, s in f.candidates], [s for _, s in e.candidates], atol=1e-5)


def test_converted_gallery_survives_save_and_load(tmp_path: Path) -> None:
    rows, queries, _ = _data()
    flat = _flat_gallery(rows)
    path = tmp_path / "g.fsg"
    flat.with_index("sketch").save(path)
    loaded = Gallery.load(path, expect_model_id="sface-test", expect_dim=DIM)
    assert loaded.index_kind == "sketch" and loaded.counts() == flat.counts()
    assert path.stat().st_mode & 0o777 == 0o600
    for name in flat.names:
        np.testing.assert_array_equal(loaded.vectors_of(name), flat.vectors_of(name))
    assert [f.name for f in loaded.identify(queries)] == [f.name for f in flat.identify(queries)]
    back = loaded.with_index("flat")
    assert back.index_kind == "flat" and back.counts() == flat.counts()


def test_unknown_kind_is_refused() -> None:
    rows, _, _ = _data()
    with pytest.raises(FacestreamError, match="index must be one of"):
        _flat_gallery(rows).with_index("annoy")  # type: ignore[arg-type]


def test_an_empty_gallery_converts() -> None:
    empty = Gallery.create("sface-test", DIM, 0.363, index="hnsw").with_index("ivf")
    assert empty.index_kind == "ivf" and empty.is_empty
    assert empty.identify(_data()[1][:2])[0].best_name is None
