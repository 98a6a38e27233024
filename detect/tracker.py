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

Between detections (detect.planner), `follow` moves each track's box by template matching
(detect.follow) and `hold` keeps boxes where nothing moved; both mark the faces they output as
`tracked`. A track that following cannot find any more is not shown until a detection finds it.

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
from detect.follow import FOLLOW_MIN, Template, follow, make_template
from detect.quality import face_patch

THUMB = 16
# Same driver 1-8 frames apart (carphone, 640x480): NCC >= 0.64; different people of the demo
# photos at one place: <= 0.49.
APPEARANCE_MIN = 0.6
# A continued track whose look fell this far from the face last embedded is embedded again: a
# track's name is a claim about that face (turning heads and changing light cost an embedding).
DRIFT_MIN = 0.5
MIN_DRIFT_GAP_S = 0.25  # at most this often per track for look changes
# A track that this many full detections in a row did not find ends, however well its template
# still matches something there: following may bridge one miss of the detector (a blink, a roll),
# not carry a box on a wall or on another face.
MAX_MISSES = 2
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
    template: Template | None = None  # None: the track cannot be followed between detections


def observe(image: np.ndarray, face: Face) -> Observation:
    """What the tracker needs of a face detected in `image` (its quality is already set)."""
    return Observation(face, face.quality or 0.0, thumbnail(image, face), make_template(image, face.box))


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
    template: Template | None = None  # the face at its last detection, for following
    score: float = 0.0  # the detector's confidence at the last detection
    velocity: tuple[float, float] = (0.0, 0.0)  # box movement, pixels per second
    visible: bool = True  # found in the last frame whose boxes were measured (detected or followed)
    misses: int = 0  # full detections in a row that did not find it (following may bridge one)
    hits: int = 1
    embeds: int = 1
    previous: tuple[float, float, float] | None = None  # (embedded_at, quality, embeds) before the last

    def moved_to(self, box: tuple[float, float, float, float], now_s: float) -> None:
        dt = now_s - self.last_seen
        if dt > 1e-6:
            self.velocity = ((box[0] - self.box[0]) / dt, (box[1] - self.box[1]) / dt)
        self.box, self.last_seen, self.visible = box, now_s, True

    def predicted(self, now_s: float) -> tuple[float, float, float, float]:
        dt = max(0.0, now_s - self.last_seen)
        x, y, w, h = self.box
        return (x + self.velocity[0] * dt, y + self.velocity[1] * dt, w, h)

    def as_face(self) -> Face:
        """The face this track shows in a frame where it was not detected."""
        return Face(box=self.box, score=self.score, track_id=self.track_id, tracked=True)


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
        for track in self.tracks:
            track.visible = False  # until this frame's detections (or a follow) find it
            track.misses += 1
        decisions = []
        for oi, obs in enumerate(observations):
            known = owner.get(oi)
            if known is not None:
                decisions.append(self._continue(known, obs, now_s))
                continue
            fresh = Track(self._new_id(), obs.face.box, obs.thumb, now_s, now_s, obs.quality, obs.thumb)
            fresh.template, fresh.score = obs.template, obs.face.score
            self.tracks.append(fresh)
            decisions.append(Decision(fresh.track_id, True, "new"))
        return decisions

    def _continue(self, track: Track, obs: Observation, now_s: float) -> Decision:
        track.moved_to(obs.face.box, now_s)
        track.misses = 0
        track.score = obs.face.score
        if obs.template is not None:
            track.template = obs.template
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

    def follow(
        self,
        image: np.ndarray,
        now_s: float,
        skip: set[int] | None = None,
        avoid: list[tuple[float, float, float, float]] | None = None,
        bridge: bool = False,
    ) -> tuple[list[Face], int]:
        """Find the live tracks (but `skip`) in this frame by their templates: (faces found, tracks lost).

        A lost track stays alive (a detection may find it again until `max_age_s`) but shows no
        box in this frame: a box where the face no longer looks like itself would carry a name
        that may belong to someone else. A track that a detection missed and that was then not
        shown comes back only through a detection (`bridge`: this frame's detection just missed
        them, and following may bridge that one miss). One face never shows two boxes: a track found
        on a face detected in this frame (`avoid`: that face started a track of its own) or on
        a face another, surer track was found on, is not shown.
        """
        self.tracks = [
            t for t in self.tracks if now_s - t.last_seen <= self.max_age_s and t.misses < MAX_MISSES
        ]
        found_on: list[tuple[Track, tuple[float, float, float, float]]] = []
        lost = 0
        for track in self.tracks:
            if track.template is None or (skip is not None and track.track_id in skip):
                continue
            if track.misses and not track.visible and not bridge:
                continue  # missed by the last detection and not shown since: a detection decides
            found = follow(image, track.template, track.predicted(now_s))
            if found.score < FOLLOW_MIN:
                lost += track.visible
                track.visible = False
                continue
            track.moved_to(found.box, now_s)
            found_on.append((track, found.box))
        faces: list[Face] = []
        taken = list(avoid or [])
        for track, box in sorted(found_on, key=lambda tb: (tb[0].misses, -tb[0].hits)):  # surest first
            if any(box_iou(box, other) >= self.iou_min for other in taken):
                track.visible = False
                continue
            taken.append(box)
            faces.append(track.as_face())
        return faces, lost

    def hold(self, now_s: float) -> list[Face]:
        """Nothing moved since the boxes were measured: every live track is where it was."""
        self.tracks = [t for t in self.tracks if now_s - t.last_seen <= self.max_age_s]
        shown = [t for t in self.tracks if t.visible]
        for track in shown:
            track.last_seen = now_s
        return [t.as_face() for t in shown]

    @property
    def unconfirmed(self) -> bool:
        """A visible track the last full detection did not find: the next one should confirm it."""
        return any(t.visible and t.misses for t in self.tracks)

    @property
    def boxes(self) -> list[tuple[float, float, float, float]]:
        """Where the visible tracks are (the faces the last measured frame showed)."""
        return [t.box for t in self.tracks if t.visible]

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
