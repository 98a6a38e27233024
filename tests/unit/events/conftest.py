from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.config import EventsConfig
from events.store import EventStore
from tests.postgres import PostgresServer, postgres

__all__ = ["postgres"]


@pytest.fixture(params=["sqlite", "postgresql"])
def events_config(request: pytest.FixtureRequest, tmp_path: Path) -> EventsConfig:
    """The same tests on SQLite in a temp folder and on a fresh database of a real PostgreSQL."""
    url = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.new_database()
    return EventsConfig(data_dir=tmp_path / "data", database_url=url)


@pytest.fixture
def store(events_config: EventsConfig) -> Iterator[EventStore]:
    opened = EventStore.open(events_config)
    yield opened
    opened.close()
