"""How often one detect worker can afford a full detection per camera, adapted to the load it sees.

Full detections are the worker's whole cost (YuNet: 20-40 ms a VGA frame); following tracked
faces and motion checks cost about a millisecond. When the worker is short of time (busy most
of the last second, or frames piling up), the least interval between two full detections of a
camera grows; when it has time to spare, it shrinks back to the configured floor. Every camera
of the worker gets the same interval, so overload thins detections evenly across cameras instead
of starving some, and every frame still gets its (followed) boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

HIGH = 0.85  # busy share of wall time above which the worker is short of time
LOW = 0.5  # below which it has time to spare
STEP = 1.5  # the interval grows or shrinks by this factor per window
SMALLEST = 0.05  # seconds: below this, shrinking goes straight to the floor


@dataclass
class DetectBudget:
    floor_s: float  # configured least interval (0: every frame, when the worker keeps up)
    ceiling_s: float  # the interval never grows past this (a detection at least this often)
    window_s: float = 1.0
    interval_s: float = field(init=False)
    _started: float | None = None
    _busy: float = 0.0
    _behind: bool = False
    changes: int = 0  # how often the interval changed (tests, logs)

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor_s <= self.ceiling_s:
            raise ValueError(f"need 0 <= floor ({self.floor_s}) <= ceiling ({self.ceiling_s})")
        self.interval_s = self.floor_s

    def record(self, now: float, busy_s: float, behind: bool = False) -> None:
        """One frame handled: `busy_s` of wall time spent on it; `behind`: frames had to be dropped."""
        if self._started is None:
            self._started = now - busy_s
        self._busy += busy_s
        self._behind = self._behind or behind
        elapsed = now - self._started
        if elapsed >= self.window_s:
            self._adjust(self._busy / elapsed)
            self._started, self._busy, self._behind = now, 0.0, False

    def _adjust(self, busy_share: float) -> None:
        before = self.interval_s
        if busy_share > HIGH or self._behind:
            self.interval_s = min(self.ceiling_s, max(self.interval_s * STEP, SMALLEST))
        elif busy_share < LOW and self.interval_s > self.floor_s:
            shrunk = self.interval_s / STEP
            self.interval_s = self.floor_s if shrunk < max(SMALLEST, self.floor_s) else shrunk
        if self.interval_s != before:
            self.changes += 1
