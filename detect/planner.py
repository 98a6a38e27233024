"""What one camera's next frame costs: a full detection, following its tracked faces, or nothing.

- FULL: the detector runs on the whole frame. Wanted when the camera has no reference yet,
  when motion appears outside the tracked faces (someone may have come in), when following lost
  a face, when motion gating is off, and at least every `refresh_s` (what motion missed); done
  only when the worker's budget allows one (detect.budget), else the frame is followed. A face
  that following lost is urgent: its camera may detect after URGENT_SHARE of the interval (a
  lost face shows no box until a detection finds it again; the budget then thins the routine
  detections of every camera to pay for it).
- FOLLOW: each tracked face is looked for by template matching near where it was (detect.follow).
- STILL: nothing moved since the boxes were last measured: they stand as they are.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from detect.motion import Box, Motion

URGENT_SHARE = 0.1  # of the budget's interval, after a face was lost


class Mode(enum.Enum):
    FULL = "full"
    FOLLOW = "follow"
    STILL = "still"


@dataclass
class Planner:
    refresh_s: float  # a full detection at least this often, even when nothing moves
    motion_gating: bool = True
    last_full: float = float("-inf")
    full_wanted: bool = True  # set when following lost a face; the first frame wants one too
    urgent: bool = False  # following lost a face: a detection is due sooner

    def plan(self, now: float, motion: Motion | None, tracked: list[Box], interval_s: float) -> Mode:
        """`motion`: None when there is nothing to compare with; `interval_s`: the budget's."""
        due = self.urgent_due(now, interval_s) if self.urgent else now - self.last_full >= interval_s
        wanted = (
            self.full_wanted
            or not self.motion_gating
            or motion is None
            or now - self.last_full >= self.refresh_s
            or motion.outside(tracked)
        )
        if wanted and due:
            return Mode.FULL
        if not tracked:
            return Mode.STILL  # nothing to follow: no box to show until a detection runs
        if self.motion_gating and motion is not None and not motion.any:
            return Mode.STILL
        return Mode.FOLLOW

    def urgent_due(self, now: float, interval_s: float) -> bool:
        """Whether a face lost in this very frame may be looked for in it at once (a scene cut
        shows the new faces in its first frame, not from the next one on)."""
        return now - self.last_full >= interval_s * URGENT_SHARE

    def done(self, mode: Mode, now: float, lost_a_face: bool = False) -> None:
        if mode is Mode.FULL:
            self.last_full = now
            self.full_wanted = self.urgent = False
        if lost_a_face:
            self.full_wanted = self.urgent = True
