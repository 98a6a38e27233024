"""The sightings store, the same tests on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert, update

from bus.config import EventsConfig
from bus.errors import FacestreamError
from events.schema import CURRENT_VERSION, MIGRATIONS, schema_version
from events.store import DAY_MS, EventStore, Query, SightingUpdate

T0 = 1_790_000_000_000  # ms


def _row(
    uid: str, name: str = "Unknown", camera: str = "cam0", first: int = T0, last: int = T0 + 500, **kw: object
) -> SightingUpdate:
    values: dict[str, object] = {
        "uid": uid,
        "camera_id": camera,
        "track_id": 64,
        "name": name,
        "first_seen_ms": first,
        "last_seen_ms": last,
        "best_similarity": 0.2,
        "frames": 3,
        "embedding": None,
        "model_id": "sface",
    }
    values.update(kw)
    return SightingUpdate(**values)  # type: ignore[arg-type]


def test_open_creates_the_current_schema_and_refuses_a_newer_one(events_config: EventsConfig) -> None:
    store = EventStore.open(events_config)
    assert store.version() == CURRENT_VERSION
    assert EventStore.open(events_config).version() == CURRENT_VERSION  # idempotent
    with store.engine.begin() as conn:
        conn.execute(update(schema_version).values(version=CURRENT_VERSION + 1))
    with pytest.raises(FacestreamError, match="upgrade facestream"):
        EventStore.open(events_config)
    store.close()


def test_a_version_1_database_is_migrated_with_its_rows(events_config: EventsConfig) -> None:
    store = EventStore.open(events_config, migrate=False)
    with store.engine.begin() as conn:
        schema_version.create(conn)
        conn.execute(insert(schema_version).values(version=1))
        MIGRATIONS[0](conn)
    with pytest.raises(FacestreamError, match="schema version 1"):  # the web waits for events
        store.require_current(0.0)
    with store.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(
            text(
                "INSERT INTO sightings (uid, camera_id, name, first_seen_ms, last_seen_ms, frames, snapshot_bytes)"
                " VALUES ('old', 'cam0', 'alice', 1, 2, 5, 0)"
            )
        )
    assert store.migrate() == CURRENT_VERSION
    rows, total = store.query(Query())
    assert total == 1 and rows[0].name == "alice" and rows[0].enrolled_as is None
    store.close()


def test_upsert_and_filters(store: EventStore) -> None:
    store.upsert([_row("a", "alice"), _row("b", camera="cam1", first=T0 + 10_000, last=T0 + 20_000)])
    store.upsert([_row("a", "alice", frames=9, last=T0 + 5_000)])  # the same sighting, later
    rows, total = store.query(Query())
    assert total == 2 and [r.uid for r in rows] == ["b", "a"]  # newest first
    alice = rows[1]
    assert alice.frames == 9 and alice.last_seen_ms == T0 + 5_000 and not alice.unknown
    assert [r.uid for r in store.query(Query(name="alice"))[0]] == ["a"]
    assert [r.uid for r in store.query(Query(camera_id="cam1"))[0]] == ["b"]
    assert [r.uid for r in store.query(Query(unknown=True))[0]] == ["b"]
    assert [r.uid for r in store.query(Query(unknown=False))[0]] == ["a"]
    assert [r.uid for r in store.query(Query(since_ms=T0 + 6_000))[0]] == ["b"]
    assert [r.uid for r in store.query(Query(until_ms=T0 + 1_000))[0]] == ["a"]
    page, total = store.query(Query(limit=1, offset=1))
    assert total == 2 and [r.uid for r in page] == ["a"]
    assert store.get(alice.id) == alice and store.get(10_000) is None


def test_embeddings_and_enrollment(store: EventStore) -> None:
    vec = np.linspace(-1, 1, 128, dtype=np.float32)
    store.upsert([_row("u", embedding=vec.astype("<f4").tobytes()), _row("k", "bob")])
    unknown = store.recent_unknown(10)
    assert [s.uid for s in unknown] == ["u"] and unknown[0].has_embedding
    found = store.embeddings([unknown[0].id])
    np.testing.assert_array_equal(found[unknown[0].id][0], vec)
    assert found[unknown[0].id][1] == "sface"
    store.upsert([_row("u", frames=4)])  # a later update without a vector keeps the stored one
    assert unknown[0].id in store.embeddings([unknown[0].id])
    store.set_enrolled([unknown[0].id], "carol")
    assert store.recent_unknown(10) == []
    assert store.get(unknown[0].id).enrolled_as == "carol"  # type: ignore[union-attr]


def test_snapshots_are_files_beside_the_database(store: EventStore) -> None:
    store.upsert([_row("s")])
    relative = store.save_snapshot("s", "cam0", T0, b"\xff\xd8jpeg", 0.7)
    row = store.query(Query())[0][0]
    assert row.snapshot == relative and row.snapshot_bytes == 6 and row.snapshot_quality == pytest.approx(0.7)
    path = store.snapshot_file(row)
    assert path is not None and path.read_bytes() == b"\xff\xd8jpeg"
    assert path.is_relative_to(store.data_dir.resolve() / "snapshots")
    assert store.files.resolve("../../etc/passwd") is None
    assert store.files.resolve("snapshots/../events.db") is None


def test_retention_removes_old_sightings_and_trims_snapshots(store: EventStore) -> None:
    now = T0 + 40 * DAY_MS
    store.upsert(
        [
            _row("old", last=T0),
            _row("mid", first=now - 3_000, last=now - 2_000),
            _row("new", first=now - 1_000, last=now),
        ]
    )
    for uid, first in (("old", T0), ("mid", now - 3_000), ("new", now - 1_000)):
        store.save_snapshot(uid, "cam0", first, b"x" * 100, 0.5)
    old_file = store.snapshot_file(store.query(Query(until_ms=T0 + 1))[0][0])
    assert old_file is not None
    done = store.enforce_retention(now, days=30, max_bytes=150)
    assert done.expired == 1 and done.trimmed == 1 and done.snapshot_bytes == 100
    assert not old_file.exists()
    rows = {r.uid: r for r in store.query(Query())[0]}
    assert set(rows) == {"mid", "new"}
    assert rows["mid"].snapshot is None and rows["new"].snapshot is not None


def test_a_database_that_cannot_be_reached_is_one_clear_error(tmp_path: Path) -> None:
    config = EventsConfig(data_dir=tmp_path, database_url="postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(FacestreamError, match="events database"):
        EventStore.open(config)
