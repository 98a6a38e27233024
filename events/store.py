"""The sightings store: one code path (SQLAlchemy Core) for SQLite and PostgreSQL.

The events stage writes sightings; the web stage reads them, marks enrollments and serves the
snapshots. SQLite runs in WAL mode, so the console reads while events writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import SQLAlchemyError

from bus.config import EventsConfig
from bus.errors import FacestreamError
from events.files import SnapshotFiles
from events.schema import CURRENT_VERSION, MIGRATIONS, schema_version, sightings

UNKNOWN = "Unknown"
DAY_MS = 86_400_000
_PG_LOCK = 0x66616365  # pg_advisory_xact_lock key: one migrating process at a time


def database_url(config: EventsConfig) -> str:
    """The configured URL for SQLAlchemy (psycopg 3 for PostgreSQL), or SQLite in the data folder."""
    url = config.database_url
    if url is None:
        return f"sqlite:///{(Path(config.data_dir) / 'events.db').resolve()}"
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; a power cut loses < 1 s
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


@dataclass(frozen=True)
class SightingFacts:
    """What the events stage decides about a sighting (the columns it writes)."""

    uid: str
    camera_id: str
    track_id: int | None
    name: str
    first_seen_ms: int
    last_seen_ms: int
    best_similarity: float | None
    frames: int
    model_id: str | None


@dataclass(frozen=True)
class SightingUpdate(SightingFacts):
    """A sighting as it is now, written by uid (insert, then update); no embedding keeps the stored one."""

    embedding: bytes | None


@dataclass(frozen=True)
class Sighting(SightingFacts):
    """A stored sighting, as the console reads it."""

    id: int
    snapshot: str | None
    snapshot_bytes: int
    snapshot_quality: float | None
    enrolled_as: str | None
    has_embedding: bool

    @property
    def unknown(self) -> bool:
        return self.name == UNKNOWN


@dataclass(frozen=True)
class Query:
    name: str | None = None
    camera_id: str | None = None
    since_ms: int | None = None  # last seen at or after
    until_ms: int | None = None  # first seen at or before
    unknown: bool | None = None
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class Retention:
    expired: int  # rows older than the retention period, deleted with their snapshots
    trimmed: int  # snapshots removed (rows kept) to get under max_snapshot_bytes
    snapshot_bytes: int  # what the kept snapshots take now


_COLUMNS = [c for c in sightings.c if c.name != "embedding"]
_FACTS = [f.name for f in fields(SightingFacts) if f.name != "uid"]


class EventStore:
    def __init__(self, url: str, data_dir: Path) -> None:
        self.url = url
        self.data_dir = Path(data_dir)
        self.files = SnapshotFiles(self.data_dir)
        self.kind = "sqlite" if url.startswith("sqlite") else "postgresql"
        if self.kind == "sqlite":
            self.data_dir.mkdir(parents=True, exist_ok=True)
            db = url.split("///", 1)[-1]
            if db and db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(url)
            event.listen(self.engine, "connect", _on_sqlite_connect)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)
        self._upsert = self._upsert_statement()

    @classmethod
    def open(cls, config: EventsConfig, migrate: bool = True) -> EventStore:
        store = cls(database_url(config), Path(config.data_dir))
        if migrate:
            store.migrate()
        return store

    def close(self) -> None:
        self.engine.dispose()

    # --- schema ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise FacestreamError(
                f"events database {self.where}: {exc.__class__.__name__}: {getattr(exc, 'orig', None) or exc}"
            ) from exc

    @property
    def where(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def version(self) -> int:
        with self._begin() as conn:
            if not self.engine.dialect.has_table(conn, "schema_version"):
                return 0
            return int(conn.execute(select(schema_version.c.version)).scalar_one_or_none() or 0)

    def migrate(self) -> int:
        """Bring the database to CURRENT_VERSION (one transaction per step); return the version."""
        with self._migration_lock():
            for _ in range(len(MIGRATIONS) + 1):
                with self._begin() as conn:
                    if self.kind == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
                    if not self.engine.dialect.has_table(conn, "schema_version"):
                        schema_version.create(conn)
                        conn.execute(insert(schema_version).values(version=0))
                    now = int(conn.execute(select(schema_version.c.version)).scalar_one())
                    if now > CURRENT_VERSION:
                        raise FacestreamError(
                            f"events database {self.where} has schema version {now}; this facestream "
                            f"knows up to {CURRENT_VERSION}: upgrade facestream"
                        )
                    if now == CURRENT_VERSION:
                        return now
                    MIGRATIONS[now](conn)
                    conn.execute(update(schema_version).values(version=now + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """SQLite: a lock file beside the data (PostgreSQL locks inside the transaction)."""
        if self.kind != "sqlite":
            yield
            return
        with open(self.data_dir / ".events-migrate.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def require_current(self, wait_s: float = 0.0) -> None:
        """Wait up to `wait_s` for the events stage to create or migrate the database."""
        deadline = time.monotonic() + wait_s
        while True:
            found = self.version()
            if found == CURRENT_VERSION:
                return
            if time.monotonic() >= deadline:
                raise FacestreamError(
                    f"events database {self.where} is at schema version {found}, expected "
                    f"{CURRENT_VERSION} (the events stage creates and migrates it)"
                )
            time.sleep(0.2)

    # --- writing (events stage) ------------------------------------------------------------
    def _upsert_statement(self) -> Any:
        """INSERT ... ON CONFLICT (uid) DO UPDATE, which SQLite and PostgreSQL both speak; a row
        without a vector keeps the stored one."""
        make = sqlite_insert if self.kind == "sqlite" else pg_insert
        stmt = make(sightings)
        changed: dict[str, Any] = {f: stmt.excluded[f] for f in _FACTS}
        changed["embedding"] = func.coalesce(stmt.excluded.embedding, sightings.c.embedding)
        return stmt.on_conflict_do_update(index_elements=[sightings.c.uid], set_=changed)

    def upsert(self, updates: Sequence[SightingUpdate]) -> None:
        """Insert new sightings and update known ones by uid: one statement, one transaction."""
        if not updates:
            return
        rows = [
            {
                "uid": u.uid,
                "snapshot_bytes": 0,
                "embedding": u.embedding,
                **{f: getattr(u, f) for f in _FACTS},
            }
            for u in updates
        ]
        with self._begin() as conn:
            conn.execute(self._upsert, rows)

    def save_snapshot(self, uid: str, camera_id: str, first_seen_ms: int, jpeg: bytes, quality: float) -> str:
        """Write (or replace) a sighting's snapshot file, then point its row at it."""
        relative = self.files.relative_path(uid, camera_id, first_seen_ms)
        size = self.files.write(relative, jpeg)
        with self._begin() as conn:
            conn.execute(
                update(sightings)
                .where(sightings.c.uid == uid)
                .values(snapshot=relative, snapshot_bytes=size, snapshot_quality=quality)
            )
        return relative

    def enforce_retention(self, now_ms: int, days: float, max_bytes: int) -> Retention:
        """Delete sightings last seen before the period; then drop the oldest snapshots over budget."""
        cutoff = now_ms - int(days * DAY_MS)
        with self._begin() as conn:
            old = conn.execute(
                select(sightings.c.id, sightings.c.snapshot).where(sightings.c.last_seen_ms < cutoff)
            ).all()
            if old:
                conn.execute(delete(sightings).where(sightings.c.id.in_([r.id for r in old])))
        for gone in old:
            self.files.remove(gone.snapshot)
        drop: list[Any] = []
        with self._begin() as conn:
            total = int(
                conn.execute(select(func.coalesce(func.sum(sightings.c.snapshot_bytes), 0))).scalar_one()
            )
            if total > max_bytes:
                rows = conn.execute(
                    select(sightings.c.id, sightings.c.snapshot, sightings.c.snapshot_bytes)
                    .where(sightings.c.snapshot.is_not(None))
                    .order_by(sightings.c.last_seen_ms, sightings.c.id)
                ).all()
                for candidate in rows:
                    if total <= max_bytes:
                        break
                    drop.append(candidate)
                    total -= int(candidate.snapshot_bytes)
                conn.execute(
                    update(sightings)
                    .where(sightings.c.id.in_([r.id for r in drop]))
                    .values(snapshot=None, snapshot_bytes=0, snapshot_quality=None)
                )
        for trimmed in drop:
            self.files.remove(trimmed.snapshot)
        return Retention(len(old), len(drop), total)

    # --- reading (web stage) ---------------------------------------------------------------
    @staticmethod
    def _sighting(row: Row[Any]) -> Sighting:
        data = row._mapping
        return Sighting(**{c.name: data[c.name] for c in _COLUMNS}, has_embedding=bool(data["has_embedding"]))

    def _select(self) -> Any:
        return select(*_COLUMNS, sightings.c.embedding.is_not(None).label("has_embedding"))

    def query(self, q: Query) -> tuple[list[Sighting], int]:
        """Matching sightings, newest first, and how many match in all."""
        conds = []
        if q.name is not None:
            conds.append(sightings.c.name == q.name)
        if q.camera_id is not None:
            conds.append(sightings.c.camera_id == q.camera_id)
        if q.since_ms is not None:
            conds.append(sightings.c.last_seen_ms >= q.since_ms)
        if q.until_ms is not None:
            conds.append(sightings.c.first_seen_ms <= q.until_ms)
        if q.unknown is not None:
            conds.append(sightings.c.name == UNKNOWN if q.unknown else sightings.c.name != UNKNOWN)
        where = and_(*conds) if conds else None
        with self._begin() as conn:
            stmt = self._select()
            count = select(func.count()).select_from(sightings)
            if where is not None:
                stmt, count = stmt.where(where), count.where(where)
            stmt = stmt.order_by(sightings.c.last_seen_ms.desc(), sightings.c.id.desc())
            rows = conn.execute(stmt.limit(q.limit).offset(q.offset)).all()
            total = int(conn.execute(count).scalar_one())
        return [self._sighting(r) for r in rows], total

    def get(self, sighting_id: int) -> Sighting | None:
        with self._begin() as conn:
            row = conn.execute(self._select().where(sightings.c.id == sighting_id)).first()
        return None if row is None else self._sighting(row)

    def embeddings(self, ids: Sequence[int]) -> dict[int, tuple[np.ndarray, str | None]]:
        """id -> (float32 vector, model id) for the sightings that have an embedding."""
        if not ids:
            return {}
        with self._begin() as conn:
            rows = conn.execute(
                select(sightings.c.id, sightings.c.embedding, sightings.c.model_id).where(
                    sightings.c.id.in_(list(ids)), sightings.c.embedding.is_not(None)
                )
            ).all()
        return {r.id: (np.frombuffer(r.embedding, dtype="<f4").copy(), r.model_id) for r in rows}

    def recent_unknown(self, limit: int, since_ms: int | None = None) -> list[Sighting]:
        """Unknown sightings with an embedding that nobody has enrolled yet, newest first."""
        conds = [
            sightings.c.name == UNKNOWN,
            sightings.c.embedding.is_not(None),
            sightings.c.enrolled_as.is_(None),
        ]
        if since_ms is not None:
            conds.append(sightings.c.last_seen_ms >= since_ms)
        with self._begin() as conn:
            rows = conn.execute(
                self._select().where(*conds).order_by(sightings.c.last_seen_ms.desc()).limit(limit)
            ).all()
        return [self._sighting(r) for r in rows]

    def set_enrolled(self, ids: Sequence[int], name: str) -> None:
        with self._begin() as conn:
            conn.execute(update(sightings).where(sightings.c.id.in_(list(ids))).values(enrolled_as=name))

    def snapshot_file(self, sighting: Sighting) -> Path | None:
        path = self.files.resolve(sighting.snapshot)
        return path if path is not None and path.is_file() else None
