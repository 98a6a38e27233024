"""Unknown sightings grouped by face: two people stay apart, one person seen often is one group."""

from __future__ import annotations

import numpy as np

from events.store import Sighting
from web.clusters import cluster_sightings


def _sighting(i: int) -> Sighting:
    return Sighting(
        uid=f"u{i}",
        camera_id="cam0",
        track_id=None,
        name="Unknown",
        first_seen_ms=i,
        last_seen_ms=i + 1,
        best_similarity=0.1,
        frames=5,
        model_id="m",
        id=i,
        snapshot=None,
        snapshot_bytes=0,
        snapshot_quality=None,
        enrolled_as=None,
        has_embedding=True,
    )


def _people(counts: list[int], spread: float = 0.15) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(4)
    vectors, i = {}, 1
    for n in counts:
        center = rng.standard_normal(128)
        for _ in range(n):
            v = center / np.linalg.norm(center) + spread * rng.standard_normal(128) / np.sqrt(128)
            vectors[i] = (v / np.linalg.norm(v)).astype(np.float32)
            i += 1
    return vectors


def test_two_people_two_groups_and_one_person_one_group() -> None:
    vectors = _people([6, 4])
    sightings = [_sighting(i) for i in vectors]
    groups, method = cluster_sightings(sightings, vectors, same_person=0.4)
    assert method == "silhouette"
    assert [sorted(s.id for s in g.members) for g in groups] == [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10]]
    assert groups[0].members[0].id == 6 and groups[0].id == 1 and groups[0].cohesion > 0.9
    one = _people([9])
    groups, _ = cluster_sightings([_sighting(i) for i in one], one, same_person=0.4)
    assert len(groups) == 1 and len(groups[0].members) == 9  # K-means split it; the merge joins it


def test_small_inputs() -> None:
    assert cluster_sightings([], {}, 0.4) == ([], "none")
    one = _people([1])
    groups, method = cluster_sightings([_sighting(1), _sighting(99)], one, 0.4)  # 99: no vector
    assert method == "single" and [s.id for s in groups[0].members] == [1]
