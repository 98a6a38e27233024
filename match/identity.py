"""A stable name per face track: every embedding is one vote, and a vote against the name withdraws it.

Detect embeds a track only now and then; its other frames carry the track id and no vector, and
get the track's name here. Match sees the frames of every detect worker, so it also joins the
tracks that different workers started for one face (each worker tracks the frames it gets):
a new track takes over the identity it overlaps (IoU) unless that identity ever had a track from
the same worker: one worker's tracker started a new track there, so it judged the face another
one (a scene cut, someone taking another's place) or lost it for too long to be sure.

Frames reach match out of order (faces needing no embedding come straight from detect, the
others through embed), so times only move forward: an older frame never makes a track look
older, nor moves an identity's box back.

The shown name is a claim about the face on the track, and it must stay true. Votes smooth
between names that both fit (two similar people above the threshold: the majority wins), but an
embedding that does not match the shown name at all (below the threshold for it: "Unknown", or
another person while the shown one is out of reach) vetoes it at once: the track starts over
with that vote, so another person stepping into the same place never wears the old name.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bus.geometry import box_iou
from bus.records import Face
from bus.tracks import worker_of

MIN_WEIGHT = 0.05  # a vote's weight is the face quality, but never nothing
UNKNOWN = "Unknown"

# (face position, name) -> does this frame's embedding of that face match that name?
Supports = Callable[[int, str], bool]


@dataclass(frozen=True)
class Vote:
    name: str
    similarity: float
    weight: float


@dataclass
class Person:
    """One face on one camera as match sees it: the detect tracks of it and their votes."""

    box: tuple[float, float, float, float]
    last_seen: float
    votes: deque[Vote]
    members: dict[int, float] = field(default_factory=dict)  # detect track id -> last seen
    workers: set[int] = field(default_factory=set)  # every detect worker that had a track of it
    name: str | None = None

    def seen(self, track_id: int, box: tuple[float, float, float, float], now_s: float) -> None:
        self.members[track_id] = max(self.members.get(track_id, now_s), now_s)
        self.workers.add(worker_of(track_id))
        if now_s >= self.last_seen:
            self.box, self.last_seen = box, now_s

    def vote(self, name: str, similarity: float, quality: float | None, backs_shown: bool = True) -> None:
        """Count one embedding; `backs_shown` False: it does not match the shown name (a veto)."""
        weight = 1.0 if quality is None else max(MIN_WEIGHT, min(1.0, quality))
        shown_known = self.name is not None and self.name != UNKNOWN
        if shown_known and name != self.name and (name == UNKNOWN or not backs_shown):
            self.votes.clear()  # the claim is withdrawn; this embedding starts a new one
            self.name = None
        self.votes.append(Vote(name, similarity, weight))
        tally: dict[str, float] = {}
        for v in self.votes:
            tally[v.name] = tally.get(v.name, 0.0) + v.weight
        leader = max(tally, key=lambda n: tally[n])
        # Hysteresis: the shown name changes only when another name outweighs it.
        if self.name is None or tally.get(self.name, 0.0) < tally[leader]:
            self.name = leader

    @property
    def similarity(self) -> float | None:
        """The latest similarity measured for the shown name."""
        for v in reversed(self.votes):
            if v.name == self.name:
                return v.similarity
        return None


class TrackNames:
    """Per camera: detect track ids -> persons, each with a smoothed name."""

    def __init__(self, window: int = 5, max_age_s: float = 1.0, link_iou: float = 0.3) -> None:
        self.window = window
        self.max_age_s = max_age_s
        self.link_iou = link_iou
        self._people: dict[str, list[Person]] = {}

    def people(self, camera: str) -> list[Person]:
        return self._people.get(camera, [])

    def end(self, camera: str) -> None:
        self._people.pop(camera, None)

    def _expire(self, camera: str, now_s: float) -> list[Person]:
        alive = []
        for person in self._people.get(camera, []):
            person.members = {t: s for t, s in person.members.items() if now_s - s <= self.max_age_s}
            if now_s - person.last_seen <= self.max_age_s:
                alive.append(person)
        self._people[camera] = alive
        return alive

    def _find(self, people: list[Person], face: Face, track_id: int, taken: set[int]) -> Person | None:
        for person in people:
            if track_id in person.members:
                return person
        worker = worker_of(track_id)
        best, best_iou = None, self.link_iou
        for person in people:
            if id(person) in taken or worker in person.workers:
                continue
            overlap = box_iou(person.box, face.box)
            if overlap >= best_iou:
                best, best_iou = person, overlap
        return best

    def name_faces(
        self,
        camera: str,
        now_s: float,
        faces: list[Face],
        found: dict[int, tuple[str, float]],
        supports: Supports | None = None,
    ) -> None:
        """Fill name and similarity of every face; `found` maps face position -> this frame's match.

        `supports` answers whether a face's embedding matches a given name (above the threshold
        for that person); without it, only an "Unknown" vote can veto a name.
        """
        people = self._expire(camera, now_s)
        taken: set[int] = set()
        for pos, face in enumerate(faces):
            match = found.get(pos)
            if face.track_id is None:  # untracked: this frame's own answer
                face.name, face.similarity = match if match is not None else (None, None)
                continue
            person = self._find(people, face, face.track_id, taken)
            if person is None:
                person = Person(face.box, now_s, deque(maxlen=self.window))
                people.append(person)
            taken.add(id(person))
            person.seen(face.track_id, face.box, now_s)
            if match is not None:
                shown = person.name
                backs = True
                if supports is not None and shown is not None and shown not in (match[0], UNKNOWN):
                    backs = supports(pos, shown)
                person.vote(match[0], match[1], face.quality, backs)
            face.name, face.similarity = person.name, person.similarity
