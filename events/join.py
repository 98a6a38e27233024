"""Frames for snapshots: which frames events needs, and pairing them with their results by seq.

Events reads a camera's frames only while one of its sightings wants a (better) snapshot and has
not got it, so an idle events stage costs capture nothing (ZeroMQ filters at the publisher): a
wish ends when its snapshot is cut, or WANT_S after the last result that renewed it. A frame
waits here for its result and a result for its frame, each for a short while only.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from bus.records import Face, Frame
from events.sightings import Sighting

MAX_FRAMES = 16  # per camera: results trail their frames by a few frames
MAX_PENDING = 64  # per camera: results whose frame has not come (yet)
WANT_S = 1.5  # read a camera's frames this long after the last wish for a snapshot


@dataclass
class _Camera:
    frames: OrderedDict[int, Frame] = field(default_factory=OrderedDict)
    pending: OrderedDict[int, tuple[tuple[int, int], list[tuple[Sighting, Face]]]] = field(
        default_factory=OrderedDict
    )  # seq -> ((w, h) of the result's frame, candidates)
    wishes: dict[str, float] = field(default_factory=dict)  # sighting uid -> until (monotonic s)


Candidates = list[tuple[Sighting, Face]]


class FrameJoin:
    def __init__(self) -> None:
        self.cameras: dict[str, _Camera] = {}

    def _cam(self, camera_id: str) -> _Camera:
        return self.cameras.setdefault(camera_id, _Camera())

    def on_result(
        self, camera_id: str, seq: int, size: tuple[int, int], candidates: Candidates, now: float
    ) -> tuple[Frame, tuple[int, int], Candidates] | None:
        """Candidates for a snapshot from one result: its frame when already here, else wait for it."""
        if not candidates:
            return None
        cam = self._cam(camera_id)
        for sighting, _face in candidates:
            cam.wishes[sighting.uid] = now + WANT_S
        frame = cam.frames.pop(seq, None)
        if frame is not None:
            return frame, size, candidates
        cam.pending[seq] = (size, candidates)
        while len(cam.pending) > MAX_PENDING:
            cam.pending.popitem(last=False)
        return None

    def on_frame(self, frame: Frame) -> tuple[Frame, tuple[int, int], Candidates] | None:
        cam = self.cameras.get(frame.camera_id)
        if cam is None:
            return None
        waiting = cam.pending.pop(frame.seq, None)
        if waiting is not None:
            return frame, waiting[0], waiting[1]
        cam.frames[frame.seq] = frame
        while len(cam.frames) > MAX_FRAMES:
            cam.frames.popitem(last=False)
        return None

    def satisfied(self, camera_id: str, uid: str) -> None:
        """A sighting got its snapshot: its wish ends now."""
        cam = self.cameras.get(camera_id)
        if cam is not None:
            cam.wishes.pop(uid, None)

    def wanted(self, now: float) -> set[str]:
        """Cameras whose frames are needed now; the others' buffers are emptied."""
        out = set()
        for camera_id, cam in self.cameras.items():
            cam.wishes = {uid: until for uid, until in cam.wishes.items() if now < until}
            if cam.wishes:
                out.add(camera_id)
            else:
                cam.frames.clear()
                cam.pending.clear()
        return out

    def forget(self, camera_id: str) -> None:
        self.cameras.pop(camera_id, None)
