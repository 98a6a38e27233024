"""The events database: its tables (the newest schema) and the migrations that lead there.

One SQLAlchemy Core description serves SQLite and PostgreSQL. `schema_version` holds one row;
each migration takes the database from version N-1 to N inside one transaction, so an old
database is brought up to date on open and a newer one is refused.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    text,
)

NAME_CHARS = 128  # match.gallery.MAX_NAME_CHARS
CAMERA_CHARS = 64  # camera ids: [A-Za-z0-9_.-]{1,64}

metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))


def _sightings_v1(meta: MetaData) -> Table:
    return Table(
        "sightings",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("uid", String(32), nullable=False, unique=True),  # chosen by the events stage
        Column("camera_id", String(CAMERA_CHARS), nullable=False, index=True),
        Column("track_id", BigInteger),  # detect's track id (null: untracked faces, linked by overlap)
        Column("name", String(NAME_CHARS), nullable=False),  # a person, or "Unknown"
        Column("first_seen_ms", BigInteger, nullable=False),  # capture time, Unix epoch ms
        Column("last_seen_ms", BigInteger, nullable=False, index=True),
        Column("best_similarity", Float),
        Column("frames", Integer, nullable=False),
        Column("snapshot", String(255)),  # path relative to the data folder
        Column("snapshot_bytes", Integer, nullable=False, default=0),
        Column("snapshot_quality", Float),
        Column("embedding", LargeBinary),  # float32 little-endian, the best-quality face's
        Column("model_id", String(128)),
    )


sightings = _sightings_v1(metadata)
# Added by migration 2: the person a sighting was enrolled as from the console.
sightings.append_column(Column("enrolled_as", String(NAME_CHARS)))
Index("ix_sightings_name", sightings.c.name)


def _v1(conn: Connection) -> None:
    """The sightings table as first released."""
    _sightings_v1(MetaData()).create(conn)


def _v2(conn: Connection) -> None:
    """enrolled_as (console enrollment) and an index for the name filter."""
    conn.execute(text(f"ALTER TABLE sightings ADD COLUMN enrolled_as VARCHAR({NAME_CHARS})"))
    conn.execute(text("CREATE INDEX ix_sightings_name ON sightings (name)"))


MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_v1, _v2)
CURRENT_VERSION = len(MIGRATIONS)
