"""What the overlay counts per camera, and the run summary made from it.

Also the check of match's `published` counter: a gap in it is how many results the PUB hop
dropped, but the number comes from the wire, so a jump larger than the frames that could have
been published in between is refused (counted as malformed) instead of feeding a drop counter.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bus.records import MatchResult
from overlay.draw import UNKNOWN
from overlay.join import Joined

LATENCY_SAMPLES = 10_000
# Results may overtake each other (frames without a new face go to match directly, the others
# through embed), so a gap may exceed the seq distance by what can be in flight on the way.
REORDER_SLACK = 256


@dataclass
class PublishedCheck:
    """Follows one camera's `published` numbers; says how many results went missing."""

    last: int = 0  # the last plausible number seen (0: none yet)
    last_seq: int = -1  # the highest seq among results seen so far

    def dropped_before(self, result: MatchResult) -> int | None:
        """Results dropped before this one (0 or more); None when the number is implausible."""
        number = result.published
        previous_seq, self.last_seq = self.last_seq, max(self.last_seq, result.seq)
        if number is None:
            return 0
        if number < 1:
            return None
        if self.last == 0 or number <= self.last:  # the first one, or match restarted
            self.last = number
            return 0
        gap = number - self.last - 1
        possible = max(0, result.seq - previous_seq - 1) + REORDER_SLACK
        if gap > possible:
            return None
        self.last = number
        return gap


@dataclass
class CameraTally:
    camera_id: str
    written: int = 0
    with_result: int = 0
    without_result: int = 0
    faces: int = 0
    tracked_faces: int = 0  # faces whose box came from their track, not from a detection
    unknown: int = 0
    identities: set[str] = field(default_factory=set)
    end_reason: str = ""
    last_seq: int = -1
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    def count(self, joined: Joined) -> None:
        self.written += 1
        self.last_seq = joined.frame.seq
        result = joined.result
        if result is None:
            self.without_result += 1
            return
        self.with_result += 1
        self.faces += len(result.faces)
        self.tracked_faces += sum(1 for f in result.faces if f.tracked)
        self.unknown += sum(1 for f in result.faces if f.name == UNKNOWN)
        self.identities.update(f.name for f in result.faces if f.name is not None and f.name != UNKNOWN)
        latency = joined.latency_ms
        if latency is not None:
            self.latencies_ms.append(latency)

    def as_dict(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        return {
            "frames": self.written,
            "frames_with_result": self.with_result,
            "frames_without_result": self.without_result,
            "faces": self.faces,
            "tracked_faces": self.tracked_faces,
            "unknown_faces": self.unknown,
            "identities": sorted(self.identities),
            "last_seq": self.last_seq,
            "end_reason": self.end_reason or None,
            "latency_ms": None
            if lat.size == 0
            else {
                "p50": round(float(np.percentile(lat, 50)), 2),
                "p95": round(float(np.percentile(lat, 95)), 2),
                "max": round(float(lat.max()), 2),
            },
        }


def run_summary(per_camera: dict[str, dict[str, Any]], wall_s: float, restarts: int) -> dict[str, Any]:
    """The whole run: totals over cameras, frames per second, and each camera's own figures."""
    cams = list(per_camera.values())
    frames = sum(c["frames"] for c in cams)
    return {
        "frames": frames,
        "frames_with_result": sum(c["frames_with_result"] for c in cams),
        "frames_without_result": sum(c["frames_without_result"] for c in cams),
        "faces": sum(c["faces"] for c in cams),
        "tracked_faces": sum(c["tracked_faces"] for c in cams),
        "unknown_faces": sum(c["unknown_faces"] for c in cams),
        "identities": sorted(set().union(*(c["identities"] for c in cams))),
        "wall_s": round(wall_s, 3),
        "fps": round(frames / wall_s, 2) if wall_s > 0 else 0.0,
        "per_camera": per_camera,
        "overlay_restarts": restarts,
    }
