"""What the console knows of each camera from the results stream: rate, age, faces on screen now."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from bus.records import EndOfStream, MatchResult, Record

FPS_WINDOW_S = 5.0
STALE_S = 5.0  # a camera without a result for this long is shown as stalled


@dataclass
class _Camera:
    arrivals: deque[float] = field(default_factory=deque)
    last_at: float | None = None
    last_seq: int = -1
    faces: list[dict[str, Any]] = field(default_factory=list)
    published: int = 0
    missed: int = 0  # results the PUB hop dropped on the way to the console
    ended: str | None = None


class LiveState:
    """Written by the stage's loop, read by the HTTP handlers (one lock)."""

    def __init__(self, camera_ids: list[str]) -> None:
        self._lock = threading.Lock()
        self._cams = {cid: _Camera() for cid in camera_ids}

    @property
    def camera_ids(self) -> list[str]:
        return list(self._cams)

    def observe(self, record: Record, now: float | None = None) -> None:
        cam = self._cams.get(record.camera_id)
        if cam is None:
            return
        at = time.monotonic() if now is None else now
        with self._lock:
            if isinstance(record, EndOfStream):
                cam.ended = record.reason or "ended"
                return
            if not isinstance(record, MatchResult):
                return
            cam.ended = None
            if record.published is not None:
                if cam.published and record.published > cam.published + 1:
                    cam.missed += record.published - cam.published - 1
                cam.published = record.published
            cam.arrivals.append(at)
            while cam.arrivals and at - cam.arrivals[0] > FPS_WINDOW_S:
                cam.arrivals.popleft()
            cam.last_at, cam.last_seq = at, record.seq
            cam.faces = [
                {
                    "name": f.name,
                    "similarity": None if f.similarity is None else round(float(f.similarity), 4),
                    "box": [round(float(v), 1) for v in f.box],
                    "track_id": f.track_id,
                }
                for f in record.faces
            ]

    def cameras(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        at = time.monotonic() if now is None else now
        out = {}
        with self._lock:
            for cid, cam in self._cams.items():
                recent = [t for t in cam.arrivals if at - t <= FPS_WINDOW_S]
                age = None if cam.last_at is None else max(0.0, at - cam.last_at)
                if cam.ended is not None:
                    status = "ended"
                elif age is None:
                    status = "waiting"
                else:
                    status = "live" if age <= STALE_S else "stalled"
                span = min(FPS_WINDOW_S, at - recent[0]) if len(recent) > 1 else 0.0
                out[cid] = {
                    "status": status,
                    "fps": round((len(recent) - 1) / span, 2) if span > 0 else 0.0,
                    "last_result_age_s": None if age is None else round(age, 3),
                    "last_seq": cam.last_seq if cam.last_seq >= 0 else None,
                    "faces": list(cam.faces) if status == "live" else [],
                    "missed_results": cam.missed,
                }
        return out
