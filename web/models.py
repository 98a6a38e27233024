"""The API's request and response bodies (they make the OpenAPI schema at /openapi.json)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# A name is stripped of surrounding whitespace, then must follow match.gallery.check_name: no path
# separators or control characters ("Unknown", reserved for faces below the threshold, is a 409).
# The pattern documents that (Unicode whitespace spelled out: regex engines disagree on \s); the
# check itself is web.library.clean_name, so the schema and the server cannot disagree.
_UNICODE_SPACE = r"\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x20" + _UNICODE_SPACE  # what str.strip() drops
_EDGE = rf"[^/\\\x00-\x20\x7f{_UNICODE_SPACE}]"
_MIDDLE = r"[^/\\\x00-\x1f\x7f]"
NAME_PATTERN = f"^[{_SPACE}]*{_EDGE}({_MIDDLE}*{_EDGE})?[{_SPACE}]*$"
NAME_HELP = "a person's name (surrounding spaces are dropped): no / or \\, no control characters; not Unknown"
NAME_FIELD = Field(
    min_length=1, max_length=128, description=NAME_HELP, json_schema_extra={"pattern": NAME_PATTERN}
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(BaseModel):
    detail: str


class StageState(BaseModel):
    name: str
    index: int
    up: bool | None = Field(description="null: unknown (metrics.base_port is not set)")


class CameraHealth(BaseModel):
    id: str
    status: str = Field(description="live, stalled, waiting (no result yet) or ended")
    fps: float = Field(description="results per second over the last 5 s")
    last_result_age_s: float | None
    drops: dict[str, int] = Field(description="frames dropped per hop (from the stages' metrics)")
    missed_results: int = Field(description="results the console missed on the results hop")


class DatabaseHealth(BaseModel):
    kind: str
    sightings: int


class Health(BaseModel):
    status: str = Field(description="ok, or degraded when a stage is down")
    stages: list[StageState]
    cameras: list[CameraHealth]
    database: DatabaseHealth


class LiveFace(BaseModel):
    name: str | None
    similarity: float | None
    box: list[float]
    track_id: int | None


class Camera(BaseModel):
    id: str
    status: str
    fps: float
    last_result_age_s: float | None
    last_seq: int | None = Field(description="frame number of the latest result")
    faces: list[LiveFace] = Field(description="the faces of the latest result, with their names")
    stream_url: str = Field(description="MJPEG of overlay's drawn frames (boxes and names)")
    snapshot_url: str


class Event(BaseModel):
    id: int
    camera_id: str
    name: str
    unknown: bool
    first_seen: datetime
    last_seen: datetime
    best_similarity: float | None
    frames: int
    snapshot_url: str | None
    has_embedding: bool
    enrolled_as: str | None


class EventPage(BaseModel):
    items: list[Event]
    total: int
    limit: int
    offset: int


class Person(BaseModel):
    name: str
    faces: int = Field(description="face vectors in the gallery")
    photo_urls: list[str]


class PersonChange(BaseModel):
    name: str
    faces: int


class Removed(BaseModel):
    name: str
    removed: int


class NameBody(Strict):
    name: str = NAME_FIELD


EventId = Annotated[int, Field(ge=1, le=2**31 - 1)]  # sighting ids are 32-bit in PostgreSQL


class SightingsBody(Strict):
    event_ids: list[EventId] = Field(min_length=1, max_length=500)


class Enrolled(BaseModel):
    name: str
    faces: int
    event_ids: list[int]


class Cluster(BaseModel):
    id: int
    size: int
    cohesion: float
    event_ids: list[int]
    cameras: list[str]
    first_seen: datetime
    last_seen: datetime
    snapshot_urls: list[str]


class Clusters(BaseModel):
    clusters: list[Cluster]
    method: str = Field(description="how the number of groups was chosen")
    sightings: int


class Recording(BaseModel):
    name: str
    url: str
    bytes: int
    modified: datetime


class CameraRecordings(BaseModel):
    camera_id: str
    files: list[Recording]
