"""The match process: owns the gallery, names every embedded face, publishes results.

Embeddings arrive on one PULL socket from any number of embed workers, and so do the faces of
frames that need no embedding, straight from detect (they must not wait behind embed, nor be
dropped by it when it falls behind); results go out on one PUB socket to overlay and any event
consumer. The gallery file is watched and hot-reloaded, so
enrolling a new person needs no restart.

Each camera's frames are named in the order detect sent them (match.order: the two paths
overtake each other). Everything waiting is searched in one FAISS call (a backlog costs one search, not one per frame),
and tracked faces get their track's smoothed name (match.identity), so names do not flicker;
an embedding that does not match a track's name withdraws it at once.
Each result carries `published`, its number among this camera's results, so a subscriber can
count what the PUB hop dropped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

import faiss
import numpy as np
import zmq

from bus.config import PipelineConfig
from bus.errors import FacestreamError, WireError
from bus.records import Embeddings, EndOfStream, FaceCrops, MatchResult, Record
from bus.sockets import SMALL_HWM
from bus.stage import Stage, since_capture_s
from bus.topology import endpoint
from match.gallery import Gallery, Identity, file_signature
from match.identity import TrackNames
from match.order import InOrder

RELOAD_CHECK_S = 1.0


class MatchStage(Stage):
    name: ClassVar[str] = "match"

    gallery: Gallery  # opened in on_start, with the sockets
    _pub: zmq.Socket[Any]

    def __init__(self, config: PipelineConfig, index: int = 0, ready_file: Path | None = None) -> None:
        super().__init__(config, index, ready_file)
        self.names = TrackNames(
            window=config.match.vote_window,
            max_age_s=config.detect.track_max_age_s,
            link_iou=config.detect.track_iou,
        )
        self.order = InOrder(wait_s=config.match.reorder_wait_s)
        self._published: dict[str, int] = {}  # results sent per camera (MatchResult.published)
        self._signature: tuple[int, int, int] | None = None  # the gallery file's, when last loaded
        self._last_check = 0.0

    def on_start(self) -> None:
        # One search thread by default: a match process shares the host with the other stages,
        # and spinning OpenMP threads cost more than they give for a query or two per frame.
        threads = self.config.match.threads
        faiss.omp_set_num_threads(threads if threads > 0 else os.cpu_count() or 1)
        path = self.config.match.gallery
        self._signature = file_signature(path)
        self.gallery = Gallery.load(path)  # a missing or foreign file ends the process here
        self._last_check = time.monotonic()
        self.log.info(
            "gallery %s: %d people, %d vectors, model %s",
            path,
            len(self.gallery.names),
            len(self.gallery),
            self.gallery.model_id,
        )
        pull = self.socket(zmq.PULL, bind=[endpoint(self.config.bus, "match_in").bind], hwm=SMALL_HWM)
        self._pub = self.socket(zmq.PUB, bind=[endpoint(self.config.bus, "results").bind], hwm=SMALL_HWM)
        self.inputs.append(pull)

    @property
    def threshold(self) -> float:
        configured = self.config.match.threshold
        return self.gallery.threshold if configured is None else configured

    def process_batch(self, records: list[Record], source: zmq.Socket[Any]) -> None:
        for record in records:
            self.metrics.inc_in(record.camera_id)
        now = time.monotonic()
        ready: list[Embeddings | EndOfStream] = []
        for record in records:
            if isinstance(record, EndOfStream):
                ready.extend(self.order.flush(record.camera_id))  # what waited goes out before the end
                ready.append(record)
                continue
            usable = self._as_embeddings(record) if isinstance(record, FaceCrops) else record
            if isinstance(usable, Embeddings):
                if self._usable(usable):
                    ready.extend(self.order.add(usable, now))
            elif usable is not None:
                self.reject(WireError("unexpected_kind", f"match takes embeddings, got {usable.KIND!r}"))
        self._name_and_publish(ready)

    def _name_and_publish(self, records: list[Embeddings | EndOfStream]) -> None:
        """One gallery search for all of them, then each published in order."""
        usable = [r for r in records if isinstance(r, Embeddings)]
        started = time.perf_counter()
        found = iter(self._search(usable))
        search_s = time.perf_counter() - started
        share = search_s / max(1, len(usable))
        for record in records:
            if isinstance(record, EndOfStream):
                self.names.end(record.camera_id)
                self._send(record.to_frames(), record.camera_id)
                continue
            identities = next(found)
            if identities is not None:
                begun = time.perf_counter()
                self._publish(record, identities)
                self.metrics.observe(
                    record.camera_id, share + time.perf_counter() - begun, since_capture_s(record)
                )

    def _as_embeddings(self, faces: FaceCrops) -> Embeddings | None:
        """A frame none of whose faces needs a new embedding, as embeddings with no vectors."""
        if faces.crops:
            self.reject(WireError("unexpected_kind", "faces with crops go to embed, not to match"))
            return None
        return Embeddings(
            camera_id=faces.camera_id,
            seq=faces.seq,
            ts_ns=faces.ts_ns,
            stamps=faces.stamps,
            frame_size=faces.frame_size,
            faces=faces.faces,
            vectors=np.zeros((0, self.gallery.dim), np.float32),
            model_id=self.gallery.model_id,
            after=faces.after,
        )

    def _usable(self, record: Embeddings) -> bool:
        if record.model_id != self.gallery.model_id:
            self.reject(
                WireError(
                    "model_mismatch",
                    f"embeddings of model {record.model_id!r}, the gallery holds {self.gallery.model_id!r}",
                )
            )
            return False
        if record.vectors.shape[0] and record.vectors.shape[1] != self.gallery.dim:
            self.reject(
                WireError(
                    "bad_payload", f"{record.vectors.shape[1]}-d vectors, gallery is {self.gallery.dim}-d"
                )
            )
            return False
        return True

    def _search(self, records: list[Embeddings]) -> list[list[Identity] | None]:
        """One gallery search for the vectors of every record: each record's identities, in
        order (None for a bad record, which is rejected alone)."""
        found: list[list[Identity] | None] = [[] for _ in records]
        with_rows = [i for i, r in enumerate(records) if r.vectors.shape[0]]
        if not with_rows:
            return found
        threshold = self.threshold
        try:
            rows = self.gallery.identify(np.concatenate([records[i].vectors for i in with_rows]), threshold)
        except FacestreamError:  # e.g. an all-zero vector: find which message it was
            rows = None
        first = 0
        for i in with_rows:
            vectors = records[i].vectors
            n = vectors.shape[0]
            if rows is not None:
                found[i] = rows[first : first + n]
                first += n
                continue
            try:
                found[i] = self.gallery.identify(vectors, threshold)
            except FacestreamError as exc:  # the message is bad, not the stage
                found[i] = None
                self.reject(WireError("bad_payload", str(exc)))
        return found

    def _publish(self, record: Embeddings, found: list[Identity]) -> None:
        by_position = {
            pos: (found[face.crop_index].name, found[face.crop_index].similarity)
            for pos, face in enumerate(record.faces)
            if face.crop_index is not None
        }
        threshold = self.threshold

        def supports(pos: int, name: str) -> bool:
            row = record.faces[pos].crop_index
            if row is None:
                return True
            try:
                return self.gallery.verify_name(name, record.vectors[row]) >= threshold
            except FacestreamError:  # the name left the gallery (a reload): nothing backs it
                return False

        self.names.name_faces(record.camera_id, record.ts_ns / 1e9, record.faces, by_position, supports)
        count = self._published.get(record.camera_id, 0) + 1
        self._published[record.camera_id] = count
        result = MatchResult(
            camera_id=record.camera_id,
            seq=record.seq,
            ts_ns=record.ts_ns,
            stamps={**record.stamps, "match": time.time_ns()},
            frame_size=record.frame_size,
            faces=record.faces,
            model_id=record.model_id,
            threshold=self.threshold,
            published=count,
            vectors=record.vectors,
        )
        self._send(result.to_frames(), record.camera_id)

    def _send(self, frames: list[bytes | memoryview], camera: str) -> None:
        self._pub.send_multipart(frames, copy=False)
        self.metrics.inc_out(camera)

    def tick(self) -> None:
        now = time.monotonic()
        late = self.order.due(now)
        if late:
            self._name_and_publish(list(late))
        if now - self._last_check < RELOAD_CHECK_S:
            return
        self._last_check = now
        path = self.config.match.gallery
        signature = file_signature(path)
        if signature is None or signature == self._signature:
            return  # a deleted file keeps the gallery in memory
        self._signature = signature  # a bad file is reported once, not every second
        try:
            fresh = Gallery.load(path, expect_model_id=self.gallery.model_id, expect_dim=self.gallery.dim)
        except FacestreamError as exc:
            self.log.error("gallery reload failed, keeping the previous one: %s", exc)
            return
        self.gallery = fresh
        self.log.info("gallery reloaded: %d people, %d vectors", len(fresh.names), len(fresh))
