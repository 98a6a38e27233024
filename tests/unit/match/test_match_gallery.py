"""Gallery in memory: enrollment, 1:K identification, 1:1 verification, input validation."""

from __future__ import annotations

import numpy as np
import pytest

from bus.errors import FacestreamError
from match.gallery import UNKNOWN, Gallery, Identity

DIM = 16


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# An orthonormal basis: people use rows 0..8, rows 9.. are directions nobody has.
BASIS = np.linalg.qr(np.random.default_rng(0).standard_normal((DIM, DIM)))[0].T.astype(np.float32)
SPARE = BASIS[9:]


def near(v: np.ndarray, cos: float, w: np.ndarray = SPARE[0]) -> np.ndarray:
    """A unit vector at `cos` from v, moved toward w (orthogonal to every enrolled vector)."""
    return (cos * v + np.sqrt(1 - cos**2) * w).astype(np.float32)


@pytest.fixture()
def people() -> dict[str, np.ndarray]:
    return {"alice": BASIS[0:3], "bob": BASIS[3:6], "carol": BASIS[6:9]}


@pytest.fixture()
def gallery(people: dict[str, np.ndarray]) -> Gallery:
    g = Gallery.create("sface-test", DIM, 0.5)
    for name, vecs in people.items():
        g.add(name, vecs)
    return g


def test_contents(gallery: Gallery) -> None:
    assert len(gallery) == 9
    assert gallery.names == ["alice", "bob", "carol"]
    assert gallery.counts() == {"alice": 3, "bob": 3, "carol": 3}
    assert not gallery.is_empty


def test_add_normalises_and_accepts_one_vector(people: dict[str, np.ndarray]) -> None:
    g = Gallery.create("m", DIM, 0.5)
    assert g.add("dave", people["alice"][0] * 7.0) == 1
    stored = g.vectors_of("dave")
    assert stored.dtype == np.float32
    assert np.allclose(np.linalg.norm(stored, axis=1), 1.0, atol=1e-6)
    assert np.allclose(stored[0], people["alice"][0], atol=1e-6)


def test_identify_exact_and_noisy(gallery: Gallery, people: dict[str, np.ndarray]) -> None:
    queries = np.stack([near(people["bob"][1], 0.8), people["carol"][2]])
    found = gallery.identify(queries)
    assert [f.name for f in found] == ["bob", "carol"]
    assert found[0].similarity == pytest.approx(0.8, abs=1e-5)
    assert found[1].similarity == pytest.approx(1.0, abs=1e-5)
    # Random vectors, random queries: the gallery agrees with brute force.
    rng = np.random.default_rng(2)
    noisy = unit(rng, 20)
    truth = np.concatenate(list(people.values())) @ noisy.T
    owners = [n for n in people for _ in range(3)]
    for col, res in enumerate(gallery.identify(noisy, threshold=-1.0)):
        assert res.best_name == res.name == owners[int(truth[:, col].argmax())]
        assert res.similarity == pytest.approx(float(truth[:, col].max()), abs=1e-5)
    assert isinstance(found[0], Identity) and found[0].is_known


def test_threshold_gives_unknown_but_keeps_best_name(gallery: Gallery, people: dict[str, np.ndarray]) -> None:
    q = near(people["alice"][0], 0.45)
    (low,) = gallery.identify(q)
    assert (low.name, low.best_name) == (UNKNOWN, "alice")  # 0.45 < the gallery's 0.5
    assert low.similarity == pytest.approx(0.45, abs=1e-5)
    assert low.candidates[0][0] == "alice" and not low.is_known
    (loose,) = gallery.identify(q, threshold=0.4)
    assert loose.name == "alice"
    (strict,) = gallery.identify(people["alice"][0], threshold=1.0 - 1e-6)
    assert strict.name == "alice"  # similarity 1 >= threshold: at the threshold counts as known


def test_threshold_boundary_is_inclusive(gallery: Gallery, people: dict[str, np.ndarray]) -> None:
    q = near(people["bob"][0], 0.625)  # 0.625 is exact in float32
    (hit,) = gallery.identify(q)
    assert gallery.identify(q, threshold=hit.similarity)[0].name == "bob"
    assert gallery.identify(q, threshold=hit.similarity + 1e-4)[0].name == UNKNOWN


def test_far_vector_is_unknown(gallery: Gallery, people: dict[str, np.ndarray]) -> None:
    (res,) = gallery.identify(SPARE[3])  # orthogonal to everyone enrolled
    assert res.name == UNKNOWN
    assert res.best_name in people
    assert abs(res.similarity) < 1e-5


def test_set_threshold_changes_default(gallery: Gallery, people: dict[str, np.ndarray]) -> None:
    q = near(people["carol"][1], 0.6)
    assert gallery.identify(q)[0].name == "carol"
    gallery.set_threshold(0.9)
    assert gallery.threshold == 0.9
    assert gallery.identify(q)[0].name == UNKNOWN
    with pytest.raises(FacestreamError, match="threshold"):
        gallery.set_threshold(1.5)


def test_k_candidates_are_distinct_people(gallery: Gallery, people: dict[str, np.ndarray]) -> None:
    (res,) = gallery.identify(people["alice"][0], k=3)
    names = [n for n, _ in res.candidates]
    assert names[0] == "alice" and sorted(names) == ["alice", "bob", "carol"]
    sims = [s for _, s in res.candidates]
    assert sims == sorted(sims, reverse=True)
    # Each candidate's score is that person's best row, not just any row.
    for name, sim in res.candidates:
        assert sim == pytest.approx(float((gallery.vectors_of(name) @ people["alice"][0]).max()), abs=1e-5)
    (more,) = gallery.identify(people["alice"][0], k=10)
    assert len(more.candidates) == 3
    (one,) = gallery.identify(people["alice"][0])
    assert len(one.candidates) == 1


def test_empty_gallery() -> None:
    g = Gallery.create("m", DIM, 0.3)
    assert g.is_empty and len(g) == 0 and g.names == []
    res = g.identify(unit(np.random.default_rng(5), 2))
    assert [(r.name, r.similarity, r.best_name, r.candidates) for r in res] == [(UNKNOWN, -1.0, None, [])] * 2


def test_remove(gallery: Gallery, people: dict[str, np.ndarray]) -> None:
    assert gallery.identify(people["bob"][0])[0].name == "bob"  # builds the index first
    assert gallery.remove("bob") == 3
    assert gallery.remove("bob") == 0
    assert gallery.names == ["alice", "carol"] and len(gallery) == 6
    assert gallery.identify(people["bob"][0])[0].best_name != "bob"
    gallery.add("bob", people["bob"][:1])
    assert gallery.identify(people["bob"][0])[0].name == "bob"


def test_add_after_search_is_found(gallery: Gallery) -> None:
    gallery.identify(unit(np.random.default_rng(6), 1))
    new = unit(np.random.default_rng(7), 1)
    gallery.add("dave", new)
    assert gallery.identify(new)[0].name == "dave"


def test_verify() -> None:
    a, b = BASIS[0], near(BASIS[0], 0.3, BASIS[1])
    assert Gallery.verify(a, b) == pytest.approx(0.3, abs=1e-5)
    assert Gallery.verify(a * 3, a) == pytest.approx(1.0, abs=1e-6)
    assert Gallery.verify(a, -a) == pytest.approx(-1.0, abs=1e-6)
    with pytest.raises(FacestreamError, match="one size"):
        Gallery.verify(a, a[:8])
    with pytest.raises(FacestreamError, match="1-D"):
        Gallery.verify(a[None], a)


def test_verify_name(gallery: Gallery, people: dict[str, np.ndarray]) -> None:
    q = unit(np.random.default_rng(9), 1)[0] + 2 * people["alice"][2]
    q /= np.linalg.norm(q)
    expected = float((people["alice"] @ q).max())
    assert gallery.verify_name("alice", q) == pytest.approx(expected, abs=1e-5)
    assert gallery.verify_name("bob", q) == pytest.approx(float((people["bob"] @ q).max()), abs=1e-5)
    with pytest.raises(FacestreamError, match="not enrolled"):
        gallery.verify_name("zoe", q)


@pytest.mark.parametrize(
    ("vectors", "message"),
    [
        (np.ones((2, DIM), np.int32), "floating"),
        (np.ones((2, DIM + 1), np.float32), "shape"),
        (np.ones((2, 2, DIM), np.float32), "shape"),
        (np.full((1, DIM), np.nan, np.float32), "NaN"),
        (np.full((1, DIM), np.inf, np.float32), "NaN"),
        (np.zeros((1, DIM), np.float32), "all-zero"),
        (np.zeros((0, DIM), np.float32), "no embeddings"),
        ([1.0] * DIM, "numpy array"),
    ],
)
def test_add_rejects_bad_vectors(vectors: object, message: str) -> None:
    g = Gallery.create("m", DIM, 0.5)
    with pytest.raises(FacestreamError, match=message):
        g.add("alice", vectors)  # type: ignore[arg-type]
    assert len(g) == 0


@pytest.mark.parametrize(
    "name", ["", "  ", "a/b", "a\\b", "Unknown", "unknown", " alice", "x\n", "n" * 200, 5]
)
def test_add_rejects_bad_names(name: object) -> None:
    g = Gallery.create("m", DIM, 0.5)
    with pytest.raises(FacestreamError):
        g.add(name, np.ones(DIM, np.float32))  # type: ignore[arg-type]
    assert len(g) == 0


def test_names_may_hold_spaces_and_unicode() -> None:
    g = Gallery.create("m", DIM, 0.5)
    g.add("Jacinda Ardern", np.ones(DIM, np.float32))
    g.add("Zoë", -np.ones(DIM, np.float32))
    assert g.names == ["Jacinda Ardern", "Zoë"]


def test_identify_rejects_bad_queries(gallery: Gallery) -> None:
    with pytest.raises(FacestreamError, match="shape"):
        gallery.identify(np.ones((1, DIM + 2), np.float32))
    with pytest.raises(FacestreamError, match="k must"):
        gallery.identify(np.ones(DIM, np.float32), k=0)
    with pytest.raises(FacestreamError, match="threshold"):
        gallery.identify(np.ones(DIM, np.float32), threshold=2.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", DIM, 0.5), "model_id"),
        (("m", 0, 0.5), "dim"),
        (("m", DIM, -1.5), "threshold"),
    ],
)
def test_create_validates(args: tuple[str, int, float], message: str) -> None:
    with pytest.raises(FacestreamError, match=message):
        Gallery.create(*args)
    with pytest.raises(FacestreamError, match="index"):
        Gallery.create("m", DIM, 0.5, index="lsh")  # type: ignore[arg-type]
