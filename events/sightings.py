"""Sightings from match results: one per person-track per camera, pure bookkeeping (no I/O).

A tracked face belongs to its detect track; an untracked one (detect.track: false) joins the
live sighting of its camera whose last box it overlaps most. A sighting's name is the person
match named the track (match already smooths names by vote); "Unknown" only when no frame was
ever named. Faces match has not named yet (name null) only extend a sighting.
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from bus.geometry import Box, box_iou
from bus.records import Face, MatchResult
from events.store import UNKNOWN, SightingUpdate

LINK_IOU = 0.3  # an untracked face continues a sighting it overlaps this much
SNAPSHOT_GAIN = 0.1  # a new snapshot needs this much more quality (scores are in [0, 1])


@dataclass
class Sighting:
    uid: str
    camera_id: str
    track_id: int | None
    first_ns: int
    last_ns: int
    box: Box
    frames: int = 0
    names: Counter[str] = field(default_factory=Counter)
    similarity: dict[str, float] = field(default_factory=dict)  # best per name
    embedding: np.ndarray | None = None
    embedding_quality: float = -1.0
    model_id: str | None = None
    snapshot_quality: float = -1.0  # quality of the face in the current snapshot (-1: none yet)
    dirty: bool = True

    @property
    def name(self) -> str | None:
        known = [(n, c) for n, c in self.names.items() if n != UNKNOWN]
        if known:
            return max(known, key=lambda item: item[1])[0]
        return UNKNOWN if self.names else None

    def wants_snapshot(self, quality: float) -> bool:
        return self.snapshot_quality < 0 or quality >= self.snapshot_quality + SNAPSHOT_GAIN

    def update(self) -> SightingUpdate | None:
        """The row to write, or None while the face has no name yet."""
        name = self.name
        if name is None:
            return None
        return SightingUpdate(
            uid=self.uid,
            camera_id=self.camera_id,
            track_id=self.track_id,
            name=name,
            first_seen_ms=self.first_ns // 1_000_000,
            last_seen_ms=self.last_ns // 1_000_000,
            best_similarity=self.similarity.get(name),
            frames=self.frames,
            embedding=None if self.embedding is None else self.embedding.astype("<f4").tobytes(),
            model_id=self.model_id,
        )


def quality_of(face: Face) -> float:
    return float(face.quality) if face.quality is not None else float(face.score)


class SightingBook:
    """The live sightings of every camera."""

    def __init__(self, end_after_s: float) -> None:
        self.end_after_ns = int(end_after_s * 1e9)
        self.live: dict[str, list[Sighting]] = {}

    def observe(self, result: MatchResult) -> list[tuple[Sighting, Face]]:
        """Fold one result in; returns the (sighting, face) pairs whose face beats its snapshot."""
        people = self.live.setdefault(result.camera_id, [])
        taken: set[str] = set()
        better = []
        for face in result.faces:
            sighting = self._find(people, face, taken)
            if sighting is None:
                sighting = Sighting(
                    uid=secrets.token_hex(16),
                    camera_id=result.camera_id,
                    track_id=face.track_id,
                    first_ns=result.ts_ns,
                    last_ns=result.ts_ns,
                    box=face.box,
                )
                people.append(sighting)
            taken.add(sighting.uid)
            self._add(sighting, face, result)
            if sighting.name is not None and sighting.wants_snapshot(quality_of(face)):
                better.append((sighting, face))
        return better

    def _find(self, people: list[Sighting], face: Face, taken: set[str]) -> Sighting | None:
        if face.track_id is not None:
            return next((s for s in people if s.track_id == face.track_id), None)
        best, best_iou = None, LINK_IOU
        for s in people:
            if s.track_id is None and s.uid not in taken:
                overlap = box_iou(s.box, face.box)
                if overlap >= best_iou:
                    best, best_iou = s, overlap
        return best

    @staticmethod
    def _add(sighting: Sighting, face: Face, result: MatchResult) -> None:
        sighting.frames += 1
        sighting.box = face.box
        sighting.first_ns = min(sighting.first_ns, result.ts_ns)
        sighting.last_ns = max(sighting.last_ns, result.ts_ns)
        sighting.dirty = True
        if face.name is None:
            return
        sighting.names[face.name] += 1
        if face.similarity is not None:
            best = sighting.similarity.get(face.name)
            sighting.similarity[face.name] = face.similarity if best is None else max(best, face.similarity)
        vectors = result.vectors
        if vectors is not None and face.crop_index is not None:
            quality = quality_of(face)
            if quality > sighting.embedding_quality:
                sighting.embedding = np.array(vectors[face.crop_index], np.float32)
                sighting.embedding_quality = quality
                sighting.model_id = result.model_id

    def expire(self, now_ns: int) -> list[Sighting]:
        """Remove and return the sightings unseen for end_after_s (by capture time)."""
        ended = []
        for camera, people in self.live.items():
            keep = [s for s in people if now_ns - s.last_ns <= self.end_after_ns]
            ended += [s for s in people if now_ns - s.last_ns > self.end_after_ns]
            self.live[camera] = keep
        return ended

    def end_camera(self, camera_id: str) -> list[Sighting]:
        return self.live.pop(camera_id, [])

    def changed(self) -> list[Sighting]:
        """Live sightings changed since the last call (each is then marked clean)."""
        out = [s for people in self.live.values() for s in people if s.dirty]
        for s in out:
            s.dirty = False
        return out
