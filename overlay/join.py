"""Join a camera's frames with their own match results, by seq and nothing else.

Frames (straight from capture) and results (after detect, embed and match) travel on different
paths, so a frame waits up to `hold_s` for its result. A frame whose result does not come in
time is released without one: it is shown without boxes, never with another frame's boxes or
names (a result borrowed from a neighbouring frame puts one person's name on another's face
whenever the picture changed in between). Frames leave in seq order.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from bus.records import Frame, MatchResult

MAX_BUFFERED_FRAMES = 512  # beyond this the oldest frame leaves without waiting for its result
MAX_PENDING_RESULTS = 1024  # results whose frame has not arrived (yet)


@dataclass(frozen=True)
class Joined:
    """A frame ready to be shown, with its own result or none."""

    frame: Frame
    result: MatchResult | None
    result_arrival_ns: int | None = None  # time.time_ns() when the result reached the overlay

    @property
    def latency_ms(self) -> float | None:
        """Capture to result, for frames that have one."""
        if self.result_arrival_ns is None:
            return None
        return (self.result_arrival_ns - self.frame.ts_ns) / 1e6


@dataclass
class FrameJoin:
    """The waiting frames and results of one camera."""

    hold_s: float
    max_frames: int = MAX_BUFFERED_FRAMES
    max_results: int = MAX_PENDING_RESULTS
    released_seq: int = -1  # the last seq handed out
    max_frame_seq: int = -1  # the highest frame seq seen
    late: int = 0  # frames that came after a later frame was already released
    missing: int = 0  # seqs skipped by the frames that did arrive (dropped before the overlay)
    _frames: dict[int, tuple[Frame, float]] = field(default_factory=dict)  # seq -> (frame, arrival)
    _order: list[int] = field(default_factory=list)  # heap of waiting seqs
    _results: dict[int, tuple[MatchResult, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._frames)

    def start_after(self, seq: int) -> None:
        """Frames up to `seq` were shown before (an overlay restart): they are not missing."""
        self.max_frame_seq = max(self.max_frame_seq, seq)

    def add_frame(self, frame: Frame, now: float) -> bool:
        """Queue a frame; False (and counted as late) if its place in the video has passed."""
        seq = frame.seq
        if seq <= self.released_seq or seq in self._frames:
            self.late += 1
            return False
        if seq > self.max_frame_seq + 1:
            self.missing += seq - self.max_frame_seq - 1
        self.max_frame_seq = max(self.max_frame_seq, seq)
        self._frames[seq] = (frame, now)
        heapq.heappush(self._order, seq)
        return True

    def add_result(self, result: MatchResult, arrival_ns: int) -> bool:
        """Keep a result for its frame; False if that frame has already been shown."""
        if result.seq <= self.released_seq:
            return False
        self._results[result.seq] = (result, arrival_ns)
        if len(self._results) > self.max_results:
            del self._results[min(self._results)]
        return True

    def release(self, now: float, force: bool = False) -> list[Joined]:
        """Frames ready to show, in seq order: joined with their result, or overdue, or forced."""
        out: list[Joined] = []
        while self._order:
            seq = self._order[0]
            frame, arrived = self._frames[seq]
            joined = self._results.pop(seq, None)
            if joined is None:
                overdue = now - arrived >= self.hold_s or len(self._frames) > self.max_frames
                if not (force or overdue):
                    break
            heapq.heappop(self._order)
            del self._frames[seq]
            self.released_seq = seq
            if joined is None:
                out.append(Joined(frame, None))
            else:
                out.append(Joined(frame, joined[0], joined[1]))
        for old in [s for s in self._results if s <= self.released_seq]:
            del self._results[old]  # its frame never came (dropped before the overlay)
        return out
