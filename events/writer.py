"""All database and file work of the events stage, in one thread: the stage's loop never waits.

Rows that could not be written (database down) are kept, newest state per sighting, and written
with the next batch; snapshots that cannot be written are dropped and counted. Retention runs
at start and then every RETENTION_EVERY_S.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from bus.config import EventsConfig
from bus.errors import FacestreamError
from events.crops import snapshot_jpeg
from events.store import EventStore, SightingUpdate

RETENTION_EVERY_S = 60.0
MAX_QUEUE = 10_000


@dataclass(frozen=True)
class _Snapshot:
    update: SightingUpdate  # written first, so that the row exists
    region: np.ndarray
    quality: float


class StoreWriter:
    def __init__(self, store: EventStore, config: EventsConfig, log: logging.Logger) -> None:
        self.store = store
        self.config = config
        self.log = log
        self.queue: queue.Queue[list[SightingUpdate] | _Snapshot | None] = queue.Queue(MAX_QUEUE)
        self.unsaved: dict[str, SightingUpdate] = {}
        self.dropped = 0  # items refused because the queue was full
        self.failed_snapshots = 0
        self.snapshots = 0
        self.rows_written = 0
        self._failing = False
        self._next_retention = 0.0
        self.thread = threading.Thread(target=self._run, name="events-writer", daemon=True)
        self.thread.start()

    # --- called from the stage's loop ------------------------------------------------------
    def upsert(self, updates: list[SightingUpdate]) -> None:
        if updates:
            self._put(updates)

    def snapshot(self, update: SightingUpdate, region: np.ndarray, quality: float) -> None:
        self._put(_Snapshot(update, region, quality))

    def _put(self, item: list[SightingUpdate] | _Snapshot) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                self.log.error("the events database falls behind: dropping writes (counted)")

    def close(self, timeout_s: float = 10.0) -> None:
        self.queue.put(None)
        self.thread.join(timeout_s)
        if self.unsaved:
            self.log.error("%d sightings could not be written before stopping", len(self.unsaved))

    # --- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                item = self.queue.get(timeout=1.0)
            except queue.Empty:
                item = []
            if item is None:
                self._flush([])
                return
            if isinstance(item, _Snapshot):
                self._save_snapshot(item)
            else:
                self._flush(item)
            if time.monotonic() >= self._next_retention:
                self._retention()

    def _flush(self, updates: list[SightingUpdate]) -> bool:
        for u in updates:
            self.unsaved[u.uid] = u
        if not self.unsaved:
            return True
        batch = list(self.unsaved.values())
        try:
            self.store.upsert(batch)
        except FacestreamError as exc:
            if not self._failing:
                self._failing = True
                self.log.error("cannot write sightings (kept, retrying with the next batch): %s", exc)
            return False
        if self._failing:
            self._failing = False
            self.log.info("the events database is back: %d sightings written", len(batch))
        self.unsaved.clear()
        self.rows_written += len(batch)
        return True

    def _save_snapshot(self, item: _Snapshot) -> None:
        u = item.update
        jpeg = snapshot_jpeg(item.region, self.config.snapshot_side)
        if jpeg is None or not self._flush([u]):
            self.failed_snapshots += 1
            return
        try:
            self.store.save_snapshot(u.uid, u.camera_id, u.first_seen_ms, jpeg, item.quality)
        except (FacestreamError, OSError) as exc:
            self.failed_snapshots += 1
            self.log.warning("cannot save the snapshot of sighting %s: %s", u.uid, exc)
            return
        self.snapshots += 1

    def _retention(self) -> None:
        self._next_retention = time.monotonic() + RETENTION_EVERY_S
        cfg = self.config
        try:
            done = self.store.enforce_retention(
                int(time.time() * 1000), cfg.retention_days, cfg.max_snapshot_bytes
            )
        except (FacestreamError, OSError) as exc:
            self.log.warning("retention failed (tried again in %.0f s): %s", RETENTION_EVERY_S, exc)
            return
        if done.expired or done.trimmed:
            self.log.info(
                "retention: %d sightings older than %g days removed, %d snapshots trimmed; snapshots use %d bytes",
                done.expired,
                cfg.retention_days,
                done.trimmed,
                done.snapshot_bytes,
            )
