"""The embed worker: FaceCrops in (from any detect worker), Embeddings out to match.

Everything waiting on the input (several cameras) is aligned and embedded in one model call:
batching is what keeps a CPU embedder ahead of many feeds. When it falls behind (more crops wait
than one batch holds, or more than two frames of one camera), only the newest frame of each
camera is embedded (see embed.conflate): a slow embedder never works through a stale backlog.
The older frames' crops are not embedded (counted on hop "detect->embed" as shed crops) but their
faces still go on to match without vectors, so every detected frame keeps its boxes and its
tracks' names.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import zmq

from bus.errors import FacestreamError, WireError
from bus.records import Embeddings, EndOfStream, FaceCrops, Record
from bus.sockets import SMALL_HWM
from bus.stage import Stage, since_capture_s
from bus.topology import endpoint
from embed.conflate import Work, conflate, crop_count, keep_all, overloaded
from embed.model import EmbeddingModel

HOP = "embed->match"
HOP_IN = "detect->embed"


class EmbedStage(Stage):
    name: ClassVar[str] = "embed"

    model: EmbeddingModel
    out: zmq.Socket[Any]

    def on_start(self) -> None:
        cfg = self.config.embed
        # The model first: a bad model path fails before any socket exists.
        self.model = EmbeddingModel.load(cfg.model, cache_dir=cfg.cache_dir, threads=cfg.threads)
        bus = self.config.bus
        pull = self.socket(zmq.PULL, bind=[endpoint(bus, "embed_in", self.index).bind])
        self.out = self.socket(zmq.PUSH, connect=[endpoint(bus, "match_in").connect], hwm=SMALL_HWM)
        self.inputs.append(pull)

    def _gather(self, records: list[Record], source: zmq.Socket[Any]) -> list[Record]:
        """Wait up to batch_wait_ms for more crops while the batch is not full."""
        wait_s = self.config.embed.batch_wait_ms / 1000.0
        if wait_s <= 0:
            return records
        deadline = time.monotonic() + wait_s
        while crop_count([r for r in records if isinstance(r, FaceCrops)]) < self.config.embed.batch_size:
            left_ms = (deadline - time.monotonic()) * 1000.0
            if left_ms <= 0 or not source.poll(max(1, int(left_ms)), zmq.POLLIN):
                break
            records.extend(self.read(source, source.recv_multipart(copy=False)))
        return records

    def process_batch(self, records: list[Record], source: zmq.Socket[Any]) -> None:
        records = self._gather(list(records), source)
        for rec in records:
            self.metrics.inc_in(rec.camera_id)
        frames = [r for r in records if isinstance(r, FaceCrops)]
        if overloaded(frames, self.config.embed.batch_size):
            work, _ = conflate(frames)
        else:
            work = keep_all(frames)
        kept = {item.at for item in work}
        embedded = self._embed_all(work)
        at = 0  # position among `frames`
        for rec in records:
            if isinstance(rec, FaceCrops):
                if at not in kept:  # shed: its faces go on without vectors
                    self.metrics.drop(rec.camera_id, HOP_IN)
                    shed = _without_crops(rec, self.model.model_id, self.model.dim)
                    self._send(shed.to_frames(), rec.camera_id)
                elif at in embedded:
                    vectors, seconds = embedded[at]
                    out = Embeddings(
                        camera_id=rec.camera_id,
                        seq=rec.seq,
                        ts_ns=rec.ts_ns,
                        stamps={**rec.stamps, "embed": time.time_ns()},
                        frame_size=rec.frame_size,
                        faces=rec.faces,
                        vectors=vectors,
                        model_id=self.model.model_id,
                        after=rec.after,
                    )
                    if self._send(out.to_frames(), rec.camera_id):
                        self.metrics.observe(rec.camera_id, seconds, since_capture_s(rec))
                at += 1
            elif isinstance(rec, EndOfStream) and not self._send(rec.to_frames(), rec.camera_id):
                self.log.warning("end of stream of %s dropped: match is not keeping up", rec.camera_id)
            # other kinds do not belong on this hop; they were counted in and are ignored

    def _embed_all(self, work: list[Work]) -> dict[int, tuple[np.ndarray, float]]:
        """One model call for every crop of every frame; rows split back per frame by crop_index.
        Returns (vectors, seconds of the call it is charged) by the frame's position (Work.at);
        a frame whose faces cannot be aligned is rejected and left out."""
        start = time.perf_counter()
        aligned: list[np.ndarray] = []
        owners: list[tuple[Work, int]] = []  # (frame, first row in `aligned`)
        for item in work:
            rec = item.record
            try:
                mine = [
                    self.model.align(job.crop, job.source, origin=job.source.crop_origin) for job in item.jobs
                ]
            except FacestreamError as exc:  # e.g. an empty box and no landmarks: drop this frame only
                self.reject(WireError("bad_face", f"{rec.camera_id} frame {rec.seq}: {exc}"))
                continue
            owners.append((item, len(aligned)))
            aligned.extend(mine)
        rows = self.model.embed(aligned, self.config.embed.batch_size)
        elapsed = time.perf_counter() - start
        total = max(1, len(aligned))
        embedded: dict[int, tuple[np.ndarray, float]] = {}
        for item, first in owners:
            n = sum(1 for f in item.record.faces if f.crop_index is not None)
            embedded[item.at] = (np.ascontiguousarray(rows[first : first + n]), elapsed * n / total)
        return embedded

    def _send(self, frames: list[bytes | memoryview], camera: str) -> bool:
        try:
            self.out.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.metrics.drop(camera, HOP)
            return False
        self.metrics.inc_out(camera)
        return True


def _without_crops(rec: FaceCrops, model_id: str, dim: int) -> Embeddings:
    """A frame whose crops were shed: its faces, none with a vector (their tracks keep their names)."""
    return Embeddings(
        camera_id=rec.camera_id,
        seq=rec.seq,
        ts_ns=rec.ts_ns,
        stamps={**rec.stamps, "embed": time.time_ns()},
        frame_size=rec.frame_size,
        faces=[replace(face, crop_index=None) for face in rec.faces],
        vectors=np.zeros((0, dim), np.float32),
        model_id=model_id,
        after=rec.after,
    )
