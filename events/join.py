"""Frames for snapshots: when events needs a camera's frames, and which frame goes with which result.

A raw frame is large (640x480: 0.9 MB) and its result comes tens to hundreds of milliseconds
after it, so events never streams frames: while a sighting of a camera wants a (better) snapshot,
it subscribes, keeps the first frame that comes, unsubscribes, and waits for that frame's result.
If the result names the sighting's face, the snapshot is cut from that frame; if the pipeline
dropped the frame (a later result comes first) or its result holds no face that wants a
snapshot, the next frame is taken the same way. ZeroMQ filters at the publisher, so the rest of
the time capture sends events nothing. A wish ends with its snapshot, or WANT_S after the last
result that renewed it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bus.records import Face, Frame
from events.sightings import Sighting

WANT_S = 1.5  # a wish lasts this long after the last result that showed the face
HOLD_S = 3.0  # a kept frame whose result never comes is let go after this long

Candidates = list[tuple[Sighting, Face]]


@dataclass
class _Camera:
    wishes: dict[str, float] = field(default_factory=dict)  # sighting uid -> until (monotonic s)
    held: Frame | None = None  # the frame waiting for its result
    held_at: float = 0.0


class FrameJoin:
    def __init__(self) -> None:
        self.cameras: dict[str, _Camera] = {}
        self.frames_kept = 0

    def on_result(
        self, camera_id: str, seq: int, size: tuple[int, int], candidates: Candidates, now: float
    ) -> tuple[Frame, tuple[int, int], Candidates] | None:
        """The kept frame and this result's candidates when the result is that frame's."""
        cam = self.cameras.setdefault(camera_id, _Camera())
        for sighting, _face in candidates:
            cam.wishes[sighting.uid] = now + WANT_S
        held = cam.held
        if held is None or seq < held.seq:
            return None
        cam.held = None  # its result is here, or a later one came first: it never will
        if seq == held.seq and candidates:
            return held, size, candidates
        return None

    def on_frame(self, frame: Frame, now: float) -> None:
        cam = self.cameras.get(frame.camera_id)
        if cam is not None and cam.wishes and cam.held is None:
            cam.held, cam.held_at = frame, now
            self.frames_kept += 1

    def satisfied(self, camera_id: str, uid: str) -> None:
        """A sighting got its snapshot: its wish ends now."""
        cam = self.cameras.get(camera_id)
        if cam is not None:
            cam.wishes.pop(uid, None)

    def wanted(self, now: float) -> set[str]:
        """Cameras whose next frame is needed now."""
        out = set()
        for camera_id, cam in self.cameras.items():
            cam.wishes = {uid: until for uid, until in cam.wishes.items() if now < until}
            if cam.held is not None and (now - cam.held_at > HOLD_S or not cam.wishes):
                cam.held = None
            if cam.wishes and cam.held is None:
                out.add(camera_id)
        return out

    def forget(self, camera_id: str) -> None:
        self.cameras.pop(camera_id, None)
