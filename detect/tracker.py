"""Face tracks of one camera in one detect worker: who is who from frame to frame, and when to embed.

A detection continues the track whose last box it overlaps most (IoU), provided it also looks
alike (a 16x16 grey thumbnail, normalised cross-correlation): without the look check a scene cut
that puts another face at the same place would inherit the old face's name. A track is embedded
when it starts, then when a clearly better face of it shows up (quality gain), when its look has
drifted away from the face that was last embedded (its name is a claim about that face), or when
`reembed_interval_s` has passed; tracks not seen for `max_age_s` end. A young track is embedded
again sooner (after half the interval with `warmup` 1; 1/8, 1/4, 1/2 with 3): its first
embedding may be lost on the way (a worker host gone, a drop under load), and a crop that could
not be sent at all is asked for again at the next frame (`unsent`).

Track ids follow bus.tracks: unique across detect workers, and match can tell which worker a
track comes from.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from bus.geometry import box_iou
from bus.records import Face
from bus.tracks import check_worker, make_track_id
from detect.quality import face_patch

THUMB = 16
# Same driver 1-8 frames apart (carphone, 640x480): NCC >= 0.64; different people of the demo
# photos at one place: <= 0.49.
APPEARANCE_MIN = 0.6
# A continued track whose look fell this far from the face last embedded is embedded again: a
# track's name is a claim about that face (turning heads and changing light cost an embedding).
DRIFT_MIN = 0.5
MIN_DRIFT_GAP_S = 0.25  # at most this often per track for look changes
MIN_GAIN = 0.02  # absolute quality gain needed too, so that tiny scores do not re-embed often


def thumbnail(image: np.ndarray, face: Face) -> np.ndarray:
    """Zero-mean unit-norm grey thumbnail of the face box: its look, for cut detection."""
    patch = face_patch(image, face, THUMB).astype(np.float32).ravel()
    patch -= patch.mean()
    norm = float(np.linalg.norm(patch))
    return patch / norm if norm > 1e-6 else patch


@dataclass
class Observation:
    """One detected face with what the tracker needs to know about it."""

    face: Face
    quality: float
    thumb: np.ndarray | None = None  # None: no look check (tests, detectors without pixels)


@dataclass
class Decision:
    track_id: int
    embed: bool
    reason: str  # "new", "better", "look", "interval" or "" (not embedded)


@dataclass
class Track:
    track_id: int
    box: tuple[float, float, float, float]
    thumb: np.ndarray | None
    last_seen: float
    embedded_at: float
    embedded_quality: float
    embedded_thumb: np.ndarray | None = None  # the look of the face last embedded
    hits: int = 1
    embeds: int = 1
    previous: tuple[float, float, float] | None = None  # (embedded_at, quality, embeds) before the last


@dataclass
class Tracker:
    """The tracks of one camera; `update` is called with every frame this worker sees, in order."""

    iou_min: float = 0.3
    max_age_s: float = 1.0
    reembed_interval_s: float = 2.0
    reembed_gain: float = 0.25
    warmup: int = 1  # halvings of the re-embed interval for a new track (0: none)
    appearance_min: float = APPEARANCE_MIN
    worker: int = 0
    first_id: int | None = None  # None: random start, so a restarted worker reuses no recent id
    tracks: list[Track] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_worker(self.worker)
        self._next = self.first_id if self.first_id is not None else random.randrange(1, 1 << 20)

    def _new_id(self) -> int:
        n = self._next
        self._next += 1
        return make_track_id(n, self.worker)

    def _looks_alike(self, track: Track, obs: Observation) -> bool:
        if track.thumb is None or obs.thumb is None:
            return True
        return float(track.thumb @ obs.thumb) >= self.appearance_min

    def _drifted(self, track: Track, obs: Observation, now_s: float) -> bool:
        if track.embedded_thumb is None or obs.thumb is None or now_s - track.embedded_at < MIN_DRIFT_GAP_S:
            return False
        return float(track.embedded_thumb @ obs.thumb) < DRIFT_MIN

    def update(self, observations: list[Observation], now_s: float) -> list[Decision]:
        """One decision per observation, in order; `now_s` is the frame's capture time."""
        self.tracks = [t for t in self.tracks if now_s - t.last_seen <= self.max_age_s]
        pairs = []
        for ti, track in enumerate(self.tracks):
            for oi, obs in enumerate(observations):
                overlap = box_iou(track.box, obs.face.box)
                if overlap >= self.iou_min and self._looks_alike(track, obs):
                    pairs.append((overlap, ti, oi))
        pairs.sort(reverse=True)
        owner: dict[int, Track] = {}
        used: set[int] = set()
        for _, ti, oi in pairs:  # greedy: the best overlaps first
            if ti not in used and oi not in owner:
                used.add(ti)
                owner[oi] = self.tracks[ti]
        decisions = []
        for oi, obs in enumerate(observations):
            known = owner.get(oi)
            if known is not None:
                decisions.append(self._continue(known, obs, now_s))
                continue
            fresh = Track(self._new_id(), obs.face.box, obs.thumb, now_s, now_s, obs.quality, obs.thumb)
            self.tracks.append(fresh)
            decisions.append(Decision(fresh.track_id, True, "new"))
        return decisions

    def _continue(self, track: Track, obs: Observation, now_s: float) -> Decision:
        track.box, track.last_seen = obs.face.box, now_s
        track.hits += 1
        if obs.thumb is not None:
            track.thumb = obs.thumb
        if self._drifted(track, obs, now_s):
            reason = "look"
        elif now_s - track.embedded_at >= self.interval(track):
            reason = "interval"
        elif obs.quality > track.embedded_quality * (1.0 + self.reembed_gain) + MIN_GAIN:
            reason = "better"
        else:
            return Decision(track.track_id, False, "")
        track.previous = (track.embedded_at, track.embedded_quality, track.embeds)
        track.embedded_at, track.embedded_quality, track.embedded_thumb = now_s, obs.quality, obs.thumb
        track.embeds += 1
        return Decision(track.track_id, True, reason)

    def unsent(self, track_ids: set[int]) -> None:
        """These tracks' crops never left the worker (the next hop was full): ask for them again.

        A new track is embedded at its next frame; a continued one gets back the state it had
        before this embedding (its look is not reset: a drift is still a drift).
        """
        for track in self.tracks:
            if track.track_id not in track_ids:
                continue
            if track.previous is None:
                track.embedded_at = float("-inf")  # never embedded: at the next frame
            else:
                track.embedded_at, track.embedded_quality, embeds = track.previous
                track.embeds = int(embeds)
                track.previous = None

    def interval(self, track: Track) -> float:
        """Seconds between a track's embeddings: doubling from a short first wait to the full one."""
        halvings = max(0, self.warmup - (track.embeds - 1))
        return self.reembed_interval_s / (1 << halvings)

    def reset(self) -> None:
        self.tracks.clear()
