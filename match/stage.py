"""The match process: owns the gallery, names every embedded face, publishes results.

Embeddings arrive on one PULL socket from any number of embed workers; results go out on one
PUB socket to overlay and any event consumer. The gallery file is watched and hot-reloaded, so
enrolling a new person needs no restart.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import zmq

from bus.errors import FacestreamError, WireError
from bus.records import Embeddings, EndOfStream, MatchResult, Record
from bus.stage import Stage, since_capture_s
from bus.topology import endpoint
from match.gallery import Gallery, file_signature

RELOAD_CHECK_S = 1.0


class MatchStage(Stage):
    name: ClassVar[str] = "match"

    gallery: Gallery
    _pub: zmq.Socket[Any]

    def on_start(self) -> None:
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
        pull = self.socket(zmq.PULL, bind=[endpoint(self.config.bus, "match_in").bind])
        self._pub = self.socket(zmq.PUB, bind=[endpoint(self.config.bus, "results").bind])
        self.inputs.append(pull)

    @property
    def threshold(self) -> float:
        configured = self.config.match.threshold
        return self.gallery.threshold if configured is None else configured

    def process(self, record: Record, source: zmq.Socket[Any]) -> None:
        self.metrics.inc_in(record.camera_id)
        if isinstance(record, EndOfStream):
            self._send(record.to_frames(), record.camera_id)
            return
        if not isinstance(record, Embeddings):
            self.reject(WireError("unexpected_kind", f"match takes embeddings, got {record.KIND!r}"))
            return
        if record.model_id != self.gallery.model_id:
            self.reject(
                WireError(
                    "model_mismatch",
                    f"embeddings of model {record.model_id!r}, the gallery holds {self.gallery.model_id!r}",
                )
            )
            return
        if record.vectors.shape[0] and record.vectors.shape[1] != self.gallery.dim:
            self.reject(
                WireError(
                    "bad_payload", f"{record.vectors.shape[1]}-d vectors, gallery is {self.gallery.dim}-d"
                )
            )
            return
        started = time.perf_counter()
        threshold = self.threshold
        try:
            found = self.gallery.identify(record.vectors, threshold) if record.vectors.shape[0] else []
        except FacestreamError as exc:  # e.g. an all-zero vector: the message is bad, not the stage
            self.reject(WireError("bad_payload", str(exc)))
            return
        for face in record.faces:
            if face.crop_index is not None:
                face.name = found[face.crop_index].name
                face.similarity = found[face.crop_index].similarity
        result = MatchResult(
            camera_id=record.camera_id,
            seq=record.seq,
            ts_ns=record.ts_ns,
            stamps={**record.stamps, "match": time.time_ns()},
            frame_size=record.frame_size,
            faces=record.faces,
            model_id=record.model_id,
            threshold=threshold,
        )
        self._send(result.to_frames(), record.camera_id)
        self.metrics.observe(record.camera_id, time.perf_counter() - started, since_capture_s(record))

    def _send(self, frames: list[bytes | memoryview], camera: str) -> None:
        self._pub.send_multipart(frames, copy=False)
        self.metrics.inc_out(camera)

    def tick(self) -> None:
        now = time.monotonic()
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
