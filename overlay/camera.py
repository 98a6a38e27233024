"""One camera as the overlay sees it: its join buffer, counters, video file and end.

A camera ends only on an end-of-stream that came over its own capture link (the frames socket
of that camera): the results path carries whatever any peer pushed into match, and one forged
message there must not end a camera, let alone the service.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bus.records import EndOfStream, Frame, MatchResult
from overlay.join import FrameJoin, Joined
from overlay.tally import CameraTally, PublishedCheck
from overlay.writer import Mp4Writer


@dataclass
class CameraView:
    camera_id: str
    join: FrameJoin
    writer: Mp4Writer | None = None
    tally: CameraTally = field(init=False)
    published: PublishedCheck = field(default_factory=PublishedCheck)
    ended: bool = False
    end_seq: int = -1
    restarted: bool = False  # the overlay was restarted: frames before its first one are not missing
    _seen_frame: bool = False

    def __post_init__(self) -> None:
        self.tally = CameraTally(self.camera_id)

    def add_frame(self, frame: Frame, now: float) -> bool:
        """False when the frame comes too late to be shown (its place in the video has passed)."""
        if self.restarted and not self._seen_frame:
            self.join.start_after(frame.seq - 1)
        self._seen_frame = True
        if self.ended and frame.seq > self.end_seq:
            self.join.late += 1
            return False
        return self.join.add_frame(frame, now)

    def add_result(self, result: MatchResult, arrival_ns: int, now: float) -> bool:
        return self.join.add_result(result, arrival_ns, now)

    def end(self, eos: EndOfStream) -> None:
        self.ended = True
        self.end_seq = max(self.end_seq, eos.seq)
        self.tally.end_reason = self.tally.end_reason or eos.reason

    def release(self, now: float, force: bool = False) -> list[Joined]:
        ready = self.join.release(now, force)
        for joined in ready:
            self.tally.count(joined)
        return ready

    def done(self) -> bool:
        """Ended by its capture, and every frame it sent has been shown.

        Frames and the end travel on one PUB socket, in order, so once the end is here every
        frame that will ever come has come.
        """
        return self.ended and len(self.join) == 0

    def summary(self) -> dict[str, object]:
        out = self.tally.as_dict()
        out["missing_frames"] = self.join.missing
        out["late_frames"] = self.join.late
        out["hold_s"] = round(self.join.hold, 3)  # how long frames waited for results at the end
        out["output"] = None if self.writer is None else str(self.writer.path)  # the last segment
        out["segments"] = [] if self.writer is None else [str(p) for p in self.writer.paths]
        return out
