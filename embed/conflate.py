"""Drop-oldest for embed: when it falls behind, only the newest frame of each camera is embedded.

Falling behind means more crops waiting than one model batch holds, or more than
MAX_WAITING_PER_CAMERA frames of one camera: the ZeroMQ queues and kernel buffers in front of
embed hold a couple of dozen frames, which at tens of ms a face would be seconds of latency.

A dropped frame may hold the only crop of a track (its first face, or a better one than before).
That crop moves to the newest frame's face of the same track, so the track still gets a vector;
it is aligned with the landmarks of the frame it was cut from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bus.records import Face, FaceCrops


@dataclass
class Job:
    """One crop to embed, and the face of the kept frame whose vector it becomes."""

    target: Face  # face of the kept frame
    crop: np.ndarray
    source: Face  # the face the crop was cut for (landmarks and crop origin of its own frame)


@dataclass
class Work:
    record: FaceCrops
    at: int  # the record's position in the list it came in
    jobs: list[Job] = field(default_factory=list)


def _own_jobs(record: FaceCrops) -> dict[int, Job]:
    """Face position -> job, for the faces that came with a crop."""
    return {
        i: Job(face, record.crops[face.crop_index], face)
        for i, face in enumerate(record.faces)
        if face.crop_index is not None
    }


def keep_all(records: list[FaceCrops]) -> list[Work]:
    """Every frame with its own crops (the backlog fits in one batch)."""
    work = []
    for i, rec in enumerate(records):
        jobs = _own_jobs(rec)
        work.append(Work(rec, i, sorted(jobs.values(), key=lambda j: j.source.crop_index or 0)))
    return work


MAX_WAITING_PER_CAMERA = 2


def crop_count(records: list[FaceCrops]) -> int:
    return sum(len(r.crops) for r in records)


def overloaded(records: list[FaceCrops], batch_size: int) -> bool:
    per_camera: dict[str, int] = {}
    for rec in records:
        per_camera[rec.camera_id] = per_camera.get(rec.camera_id, 0) + 1
    return crop_count(records) > batch_size or max(per_camera.values(), default=0) > MAX_WAITING_PER_CAMERA


def conflate(records: list[FaceCrops]) -> tuple[list[Work], list[FaceCrops]]:
    """(kept work in arrival order, dropped frames): the newest frame per camera by capture time."""
    newest: dict[str, int] = {}
    for i, rec in enumerate(records):
        best = newest.get(rec.camera_id)
        if best is None or rec.ts_ns >= records[best].ts_ns:
            newest[rec.camera_id] = i
    kept_at = sorted(newest.values())
    keep = set(kept_at)
    dropped = [rec for i, rec in enumerate(records) if i not in keep]
    work = []
    for i in kept_at:
        rec = records[i]
        jobs = _own_jobs(rec)
        by_track = {f.track_id: pos for pos, f in enumerate(rec.faces) if f.track_id is not None}
        older = sorted(
            (r for r in dropped if r.camera_id == rec.camera_id), key=lambda r: r.ts_ns, reverse=True
        )
        for old in older:  # the most recent crop of a track wins
            for face in old.faces:
                pos = by_track.get(face.track_id) if face.track_id is not None else None
                if pos is None or face.crop_index is None or pos in jobs:
                    continue
                target = rec.faces[pos]
                target.quality = face.quality
                jobs[pos] = Job(target, old.crops[face.crop_index], face)

        # Own crops keep their index (and order); carried ones follow.
        def order(item: tuple[int, Job]) -> tuple[int, int]:
            pos, job = item
            own = job.source is job.target and job.source.crop_index is not None
            return (0, job.source.crop_index or 0) if own else (1, pos)

        ordered = [job for _, job in sorted(jobs.items(), key=order)]
        for index, job in enumerate(ordered):
            job.target.crop_index = index
        for pos, face in enumerate(rec.faces):
            if pos not in jobs:
                face.crop_index = None
        work.append(Work(rec, i, ordered))
    return work, dropped
