"""The events process: match results (and, when a snapshot is due, frames) -> sightings in a store.

It subscribes to every result. A camera's frames are read one at a time, only while one of its
sightings wants a first or a clearly better snapshot (events.join), so capture sends events
nothing the rest of the time. Database and file work runs in a writer thread (events.writer):
this loop never waits on disk or on the network, and so never makes capture drop a frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import zmq

from bus.config import PipelineConfig
from bus.errors import FacestreamError
from bus.records import EndOfStream, Frame, MatchResult, Record
from bus.stage import Stage, since_capture_s
from bus.topology import all_endpoints, endpoint
from bus.wire import topic_of
from events.crops import face_region
from events.join import Candidates, FrameJoin
from events.sightings import Sighting, SightingBook, quality_of
from events.store import EventStore
from events.writer import StoreWriter

FRAME_HWM = 32  # raw frames buffered for events while it reads a camera
RESULT_HWM = 1000  # results wait while the loop sleeps between cycles (small messages)
CYCLE_S = 0.1  # the loop wakes at most this often and takes everything waiting: cheap batches


class EventsStage(Stage):
    name: ClassVar[str] = "events"
    poll_ms: ClassVar[int] = 50

    def __init__(self, config: PipelineConfig, index: int = 0, ready_file: Path | None = None) -> None:
        super().__init__(config, index, ready_file)
        if config.events is None:
            raise FacestreamError("the events stage needs an `events:` section in the config")
        self.events_config = config.events
        self.book = SightingBook(self.events_config.end_after_s)
        self.join = FrameJoin()
        self.store: EventStore | None = None
        self.writer: StoreWriter | None = None
        self.subscribed: set[str] = set()
        self.frames_read = 0  # frames received for snapshots (the cost events puts on capture)
        self._next_flush = 0.0
        self._cycle_end = 0.0
        self.results: zmq.Socket[Any] | None = None
        self.frames: zmq.Socket[Any] | None = None

    def on_start(self) -> None:
        cfg = self.events_config
        self.store = EventStore.open(cfg)
        self.log.info("sightings in %s (schema %d)", self.store.where, self.store.version())
        self.writer = StoreWriter(self.store, cfg, self.log)
        self._next_flush = time.monotonic() + cfg.flush_s
        bus = self.config.bus
        self.results = self.socket(
            zmq.SUB, connect=[endpoint(bus, "results").connect], subscribe=b"", hwm=RESULT_HWM
        )
        self._cycle_end = time.monotonic()
        frames = [e.connect for e in all_endpoints(self.config, "frames")]
        self.frames = self.socket(zmq.SUB, connect=frames, hwm=FRAME_HWM)
        self.inputs.extend([self.results, self.frames])

    def _writer(self) -> StoreWriter:
        assert self.writer is not None, "the writer starts in on_start; the loop never runs before it"
        return self.writer

    def process(self, record: Record, source: zmq.Socket[Any]) -> None:
        now = time.monotonic()
        if isinstance(record, MatchResult):
            self.metrics.inc_in(record.camera_id)
            started = time.perf_counter()
            candidates = self.book.observe(record)
            ready = self.join.on_result(record.camera_id, record.seq, record.frame_size, candidates, now)
            if ready is not None:
                self._cut(*ready)
            self.metrics.observe(record.camera_id, time.perf_counter() - started, since_capture_s(record))
        elif isinstance(record, Frame):
            self.frames_read += 1
            if record.camera_id in self.subscribed:  # one that was just let go may still come
                self.join.on_frame(record, now)
                self._subscribe(now)  # one frame is enough: let go of the camera at once
        elif isinstance(record, EndOfStream) and source is self.results:
            self.join.forget(record.camera_id)
            self._write(self.book.end_camera(record.camera_id))

    def _cut(self, frame: Frame, size: tuple[int, int], candidates: Candidates) -> None:
        """Snapshots of the candidates that still beat their sighting's snapshot."""
        h, w = frame.image.shape[:2]
        scale = (w / size[0], h / size[1])
        for sighting, face in candidates:
            quality = quality_of(face)
            update = sighting.update()
            if update is None or not sighting.wants_snapshot(quality):
                continue
            region = face_region(frame.image, face.box, scale)
            if region.size:
                sighting.snapshot_quality = quality
                self.join.satisfied(frame.camera_id, sighting.uid)
                self._writer().snapshot(update, region, quality)
                self.metrics.inc_out(frame.camera_id)

    def _write(self, people: list[Sighting]) -> None:
        self._writer().upsert([u for u in (s.update() for s in people) if u is not None])

    def _subscribe(self, now: float) -> None:
        wanted = self.join.wanted(now)
        assert self.frames is not None, "opened in on_start"
        for camera_id in wanted - self.subscribed:
            self.frames.setsockopt(zmq.SUBSCRIBE, topic_of(camera_id))
        for camera_id in self.subscribed - wanted:
            self.frames.setsockopt(zmq.UNSUBSCRIBE, topic_of(camera_id))
        self.subscribed = wanted

    def tick(self) -> None:
        now = time.monotonic()
        self._subscribe(now)
        if now >= self._next_flush:
            self._next_flush = now + self.events_config.flush_s
            self._write(self.book.changed() + self.book.expire(time.time_ns()))
        rest = self._cycle_end - time.monotonic()
        if rest > 0 and not self.subscribed:  # a wanted frame is taken as soon as it comes
            self.stop_event.wait(rest)
        self._cycle_end = time.monotonic() + CYCLE_S

    def on_stop(self) -> None:
        writer = self.writer
        if writer is not None:
            self._write([s for people in self.book.live.values() for s in people])
            writer.close()
            self.log.info(
                "read %d frames; wrote %d sighting rows and %d snapshots (%d writes dropped, %d snapshots failed)",
                self.frames_read,
                writer.rows_written,
                writer.snapshots,
                writer.dropped,
                writer.failed_snapshots,
            )
        if self.store is not None:
            self.store.close()
