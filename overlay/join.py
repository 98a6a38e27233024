"""Join a camera's frames with their own match results, by seq and nothing else.

Frames (straight from capture) and results (after detect, embed and match) travel on different
paths, so a frame waits for its result. A frame whose result does not come in time is released
without one: it is shown without boxes, never with another frame's boxes or names (a result
borrowed from a neighbouring frame puts one person's name on another's face whenever the
picture changed in between). Frames leave in seq order.

How long a frame waits follows how late results actually come: at least `hold_s`, and on a
loaded machine as long as results recently needed (the slowest of the last DELAY_SAMPLES, with a
margin: slow results come in bursts, when several faces are embedded at once), up to
`max_hold_s`; until the first result has come at all (start-up: every face is new), as long as
`max_hold_s`. The video is then shown later, but with its own boxes, instead of on time without.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from bus.records import Frame, MatchResult

MAX_BUFFERED_FRAMES = 512  # beyond this the oldest frame leaves without waiting for its result
MAX_PENDING_RESULTS = 1024  # results whose frame has not arrived (yet)
DELAY_SAMPLES = 60  # recent result delays the hold adapts to
DELAY_MARGIN = 1.1
RECENT_RELEASED = 256  # released frames whose arrival is kept, to time results that came late


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
    max_hold_s: float | None = None  # None: always hold_s
    max_frames: int = MAX_BUFFERED_FRAMES
    max_results: int = MAX_PENDING_RESULTS
    released_seq: int = -1  # the last seq handed out
    max_frame_seq: int = -1  # the highest frame seq seen
    late: int = 0  # frames that came after a later frame was already released
    missing: int = 0  # seqs skipped by the frames that did arrive (dropped before the overlay)
    _frames: dict[int, tuple[Frame, float]] = field(default_factory=dict)  # seq -> (frame, arrival)
    _order: list[int] = field(default_factory=list)  # heap of waiting seqs
    _results: dict[int, tuple[MatchResult, int]] = field(default_factory=dict)
    _delays: deque[float] = field(default_factory=lambda: deque(maxlen=DELAY_SAMPLES))
    _released_at: OrderedDict[int, float] = field(default_factory=OrderedDict)  # seq -> arrival
    _hold: float | None = None  # the current hold, recomputed when a delay is recorded

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def hold(self) -> float:
        """How long a frame waits for its result now."""
        if self._hold is None:
            limit = max(self.hold_s, self.hold_s if self.max_hold_s is None else self.max_hold_s)
            wanted = limit  # nothing answered yet: wait as long as allowed
            if self._delays:
                wanted = max(self._delays) * DELAY_MARGIN + 0.05
            self._hold = min(max(self.hold_s, wanted), limit)
        return self._hold

    def _delay(self, seconds: float) -> None:
        self._delays.append(max(0.0, seconds))
        self._hold = None

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

    def add_result(self, result: MatchResult, arrival_ns: int, now: float | None = None) -> bool:
        """Keep a result for its frame; False if that frame has already been shown.

        `now` (the overlay's monotonic clock) times the result against its frame's arrival.
        """
        if now is not None:
            shown = self._released_at.get(result.seq)
            waiting = self._frames.get(result.seq)
            if shown is not None:
                self._delay(now - shown)
            elif waiting is not None:
                self._delay(now - waiting[1])
        if result.seq <= self.released_seq:
            return False
        self._results[result.seq] = (result, arrival_ns)
        if len(self._results) > self.max_results:
            del self._results[min(self._results)]
        return True

    def release(self, now: float, force: bool = False) -> list[Joined]:
        """Frames ready to show, in seq order: joined with their result, or overdue, or forced."""
        out: list[Joined] = []
        hold = self.hold
        while self._order:
            seq = self._order[0]
            frame, arrived = self._frames[seq]
            joined = self._results.pop(seq, None)
            if joined is None:
                overdue = now - arrived >= hold or len(self._frames) > self.max_frames
                if not (force or overdue):
                    break
            heapq.heappop(self._order)
            del self._frames[seq]
            self.released_seq = seq
            self._released_at[seq] = arrived
            if len(self._released_at) > RECENT_RELEASED:
                self._released_at.popitem(last=False)
            if joined is None:
                out.append(Joined(frame, None))
            else:
                out.append(Joined(frame, joined[0], joined[1]))
        for old in [s for s in self._results if s <= self.released_seq]:
            del self._results[old]  # its frame never came (dropped before the overlay)
        return out
