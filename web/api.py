"""The console's HTTP API (FastAPI) and its page. Every route but health needs a token when one
is configured (web.auth); changes need the write token.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import numpy as np
from fastapi import Cookie, Depends, FastAPI, File, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from bus.config import PipelineConfig
from bus.errors import FacestreamError
from events.store import EventStore, Sighting
from events.store import Query as EventQuery
from match.gallery import Gallery, file_signature
from web import models
from web.auth import Tokens, check
from web.clusters import cluster_sightings
from web.errors import HttpProblem
from web.health import HealthScraper
from web.library import Conflict, Library, NotFound, clean_name
from web.limits import BodyLimit
from web.live import LiveState
from web.recordings import find, segments
from web.uploads import decode_photo

STATIC = Path(__file__).parent / "static"
MULTIPART_SLACK = 64 << 10  # multipart headers around an upload
PROXY_TIMEOUT_S = 5.0
MAX_ID = 2**31 - 1  # sighting ids are 32-bit integers in PostgreSQL


bearer = HTTPBearer(auto_error=False, description="web.token (all) or web.read_token (GET only)")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
CookieToken = Annotated[str | None, Cookie(description="the token, for <img> and <video> GETs")]
CameraId = Annotated[str, PathParam(max_length=64, description="a camera id of the config")]
EventId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
Name = Annotated[
    str,
    PathParam(
        min_length=1,
        max_length=128,
        description=models.NAME_HELP,
        json_schema_extra={"pattern": models.NAME_PATTERN},
    ),
]


@dataclass
class Console:
    config: PipelineConfig
    tokens: Tokens
    store: EventStore
    library: Library
    live: LiveState
    health: HealthScraper
    mjpeg_url: str  # overlay's MJPEG server, e.g. http://127.0.0.1:8080
    # (gallery file signature, its threshold): the file is read again only when it changed
    gallery_threshold: tuple[object, float] | None = field(default=None, repr=False)

    def threshold(self) -> float:
        """The same-person similarity: match.threshold, else the gallery's own."""
        configured = self.config.match.threshold
        if configured is not None:
            return configured
        signature = file_signature(self.config.match.gallery)
        if self.gallery_threshold is None or self.gallery_threshold[0] != signature:
            self.gallery_threshold = (signature, Gallery.load(self.config.match.gallery).threshold)
        return self.gallery_threshold[1]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": models.Error} for code in codes}


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _ms(value: datetime | None) -> int | None:
    if value is None:
        return None
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return int((aware - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)


def _event(s: Sighting) -> models.Event:
    return models.Event(
        id=s.id,
        camera_id=s.camera_id,
        name=s.name,
        unknown=s.unknown,
        first_seen=_time(s.first_seen_ms),
        last_seen=_time(s.last_seen_ms),
        best_similarity=s.best_similarity,
        frames=s.frames,
        snapshot_url=f"/api/events/{s.id}/snapshot.jpg" if s.snapshot else None,
        has_embedding=s.has_embedding,
        enrolled_as=s.enrolled_as,
    )


def _person(console: Console, name: str, faces: int, photos: list[str]) -> models.Person:
    base = f"/api/people/{quote(name, safe='')}/photos"
    return models.Person(name=name, faces=faces, photo_urls=[f"{base}/{p}.jpg" for p in photos])


def known_query(request: Request) -> None:
    """A query parameter the route does not take is an error, not silently ignored (a typo)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    taken = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        taken |= {p.alias for p in sub.query_params}
    unknown = sorted(set(request.query_params) - taken)
    if unknown:
        raise FacestreamError(f"unknown query parameter(s): {', '.join(map(repr, unknown))}")


def create_app(console: Console) -> FastAPI:
    app = FastAPI(
        title="facestream console",
        version="1",
        description="Sightings, the face library and the live view of a facestream pipeline.",
        dependencies=[Depends(known_query)],
        responses=_errors(400),
    )

    def reader(creds: Credentials, facestream_token: CookieToken = None) -> None:
        check(console.tokens, creds.credentials if creds else facestream_token, write=False)

    def writer(creds: Credentials) -> None:
        check(console.tokens, creds.credentials if creds else None, write=True)

    read = [Depends(reader)]
    write = [Depends(writer)]
    auth_errors = (401,) if console.tokens.required else ()
    write_errors = (401, 403) if console.tokens.required else ()

    def get_json(path: str, model: Any, tag: str, *codes: int) -> Any:
        return app.get(
            path, response_model=model, dependencies=read, responses=_errors(*auth_errors, *codes), tags=[tag]
        )

    def get_file(path: str, media: str, tag: str, *codes: int, response_class: Any = FileResponse) -> Any:
        responses = {200: {"content": {media: {}}}, **_errors(*auth_errors, *codes)}
        return app.get(
            path, dependencies=read, responses=responses, response_class=response_class, tags=[tag]
        )

    def change(method: str, path: str, model: Any, tag: str, *codes: int) -> Any:
        return app.api_route(
            path,
            methods=[method],
            response_model=model,
            dependencies=write,
            responses=_errors(*write_errors, 400, *codes),
            tags=[tag],
        )

    @app.exception_handler(HttpProblem)
    def _problem(_: Request, exc: HttpProblem) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": exc.message}, exc.status, headers=headers)

    @app.exception_handler(FacestreamError)
    def _facestream(_: Request, exc: FacestreamError) -> JSONResponse:
        status = 404 if isinstance(exc, NotFound) else 409 if isinstance(exc, Conflict) else 400
        return JSONResponse({"detail": str(exc)}, status)

    camera_ids = [c.id for c in console.config.cameras]

    def known_camera(camera_id: str) -> None:
        if camera_id not in camera_ids:
            raise NotFound(f"no camera {camera_id!r}")

    def sighting(event_id: int) -> Sighting:
        found = console.store.get(event_id)
        if found is None:
            raise NotFound(f"no event {event_id}")
        return found

    # --- health and cameras ---------------------------------------------------------------
    @app.get("/api/health", response_model=models.Health, tags=["status"])
    def health() -> models.Health:
        """Each stage up (from its /metrics), per camera rate, last result age and drops."""
        stages = console.health.snapshot()
        drops = console.health.drops_by_camera()
        live = console.live.cameras()
        _, total = console.store.query(EventQuery(limit=1))
        down = any(s.up is False for s in stages)
        return models.Health(
            status="degraded" if down else "ok",
            stages=[models.StageState(name=s.name, index=s.index, up=s.up) for s in stages],
            cameras=[
                models.CameraHealth(
                    id=cid,
                    status=state["status"],
                    fps=state["fps"],
                    last_result_age_s=state["last_result_age_s"],
                    drops=drops.get(cid, {}),
                    missed_results=state["missed_results"],
                )
                for cid, state in live.items()
            ],
            database=models.DatabaseHealth(kind=console.store.kind, sightings=total),
        )

    @get_json("/api/cameras", list[models.Camera], "live")
    def cameras() -> list[models.Camera]:
        """Each camera's state, the faces it shows now, and its live MJPEG and snapshot URLs."""
        return [
            models.Camera(
                id=cid,
                status=state["status"],
                fps=state["fps"],
                last_result_age_s=state["last_result_age_s"],
                last_seq=state["last_seq"],
                faces=[models.LiveFace(**f) for f in state["faces"]],
                stream_url=f"/api/cameras/{cid}/stream.mjpeg",
                snapshot_url=f"/api/cameras/{cid}/snapshot.jpg",
            )
            for cid, state in console.live.cameras().items()
        ]

    def _upstream(path: str) -> Any:
        try:
            return urllib.request.urlopen(f"{console.mjpeg_url}{path}", timeout=PROXY_TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            status = 503 if exc.code == 503 else 502
            raise UpstreamError(status, f"the live view answered {exc.code}") from exc
        except OSError as exc:
            raise UpstreamError(502, f"the live view (overlay) does not answer: {exc}") from exc

    @get_file(
        "/api/cameras/{camera_id}/snapshot.jpg", "image/jpeg", "live", 404, 502, 503, response_class=Response
    )
    def camera_snapshot(camera_id: CameraId) -> Response:
        """The latest drawn frame (boxes and names) of a camera, from overlay's live view."""
        known_camera(camera_id)
        with _upstream(f"/snapshot/{camera_id}.jpg") as resp:
            return Response(resp.read(), media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @get_file(
        "/api/cameras/{camera_id}/stream.mjpeg",
        "multipart/x-mixed-replace",
        "live",
        404,
        502,
        response_class=StreamingResponse,
    )
    def camera_stream(camera_id: CameraId) -> StreamingResponse:
        """Overlay's live MJPEG stream of a camera, passed through (it never ends by itself)."""
        known_camera(camera_id)
        resp = _upstream(f"/stream/{camera_id}")

        def relay() -> Iterator[bytes]:
            try:
                while chunk := resp.read1(1 << 16):
                    yield chunk
            finally:
                resp.close()

        return StreamingResponse(
            relay(), media_type=resp.headers["Content-Type"], headers={"Cache-Control": "no-store"}
        )

    # --- events ---------------------------------------------------------------------------
    @get_json("/api/events", models.EventPage, "events")
    def events(
        name: Annotated[str | None, Query(max_length=128)] = None,
        camera: Annotated[str | None, Query(max_length=64)] = None,
        since: Annotated[datetime | None, Query(description="last seen at or after (ISO 8601)")] = None,
        until: Annotated[datetime | None, Query(description="first seen at or before (ISO 8601)")] = None,
        unknown: Annotated[bool | None, Query(description="true: only Unknown; false: only named")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    ) -> models.EventPage:
        """Sightings, newest first: one per person-track per camera."""
        q = EventQuery(name, camera, _ms(since), _ms(until), unknown, limit, offset)
        rows, total = console.store.query(q)
        return models.EventPage(items=[_event(s) for s in rows], total=total, limit=limit, offset=offset)

    @get_json("/api/events/{event_id}", models.Event, "events", 404)
    def event(event_id: EventId) -> models.Event:
        return _event(sighting(event_id))

    @get_file("/api/events/{event_id}/snapshot.jpg", "image/jpeg", "events", 404)
    def event_snapshot(event_id: EventId) -> FileResponse:
        """The best face of a sighting."""
        path = console.store.snapshot_file(sighting(event_id))
        if path is None:
            raise NotFound(f"event {event_id} has no snapshot")
        return FileResponse(path, media_type="image/jpeg")

    def _enroll(name: str, ids: list[int]) -> models.Enrolled:
        found = [sighting(i) for i in dict.fromkeys(ids)]
        vectors = console.store.embeddings([s.id for s in found])
        missing = [s.id for s in found if s.id not in vectors]
        if missing:
            raise Conflict(f"event(s) {', '.join(map(str, missing))} have no stored face embedding")
        model_ids = {vectors[s.id][1] for s in found}
        if len(model_ids) != 1:
            raise Conflict("these events were embedded by different models")
        photos = [p.read_bytes() for p in (console.store.snapshot_file(s) for s in found) if p is not None]
        faces = console.library.add_vectors(
            name, np.stack([vectors[s.id][0] for s in found]), model_ids.pop(), photos
        )
        console.store.set_enrolled([s.id for s in found], name)
        return models.Enrolled(name=name, faces=faces, event_ids=[s.id for s in found])

    @change("POST", "/api/events/{event_id}/enroll", models.Enrolled, "events", 404, 409)
    def enroll_event(event_id: EventId, body: models.NameBody) -> models.Enrolled:
        """The sighting's face becomes a new person, or another face of an existing one."""
        return _enroll(clean_name(body.name), [event_id])

    # --- people ---------------------------------------------------------------------------
    @get_json("/api/people", list[models.Person], "people")
    def people() -> list[models.Person]:
        return [_person(console, p.name, p.faces, p.photos) for p in console.library.people()]

    @get_json("/api/people/{name}", models.Person, "people", 400, 404)
    def person(name: Name) -> models.Person:
        p = console.library.person(name)
        return _person(console, p.name, p.faces, p.photos)

    @get_file("/api/people/{name}/photos/{photo_id}.jpg", "image/jpeg", "people", 400, 404)
    def person_photo(name: Name, photo_id: Annotated[str, PathParam(max_length=16)]) -> FileResponse:
        return FileResponse(console.library.photo_path(name, photo_id), media_type="image/jpeg")

    @change("POST", "/api/people/{name}/faces", models.PersonChange, "people", 409, 413)
    def add_face(
        name: Name, photo: Annotated[UploadFile, File(description="JPEG, PNG or WebP")]
    ) -> models.PersonChange:
        """Enroll the largest face of an uploaded photo (a new person, or one more face)."""
        limit = console.config.web.max_upload_bytes if console.config.web else 0
        pixels = console.config.web.max_upload_pixels if console.config.web else 0
        name = clean_name(name)
        image = decode_photo(photo.file.read(limit + 1), limit, pixels)
        return models.PersonChange(name=name, faces=console.library.add_photo(name, image))

    @change("POST", "/api/people/{name}/sightings", models.Enrolled, "people", 404, 409)
    def enroll_sightings(name: Name, body: models.SightingsBody) -> models.Enrolled:
        """Enroll the faces of several sightings at once (e.g. a cluster of Unknown faces)."""
        return _enroll(clean_name(name), body.event_ids)

    @change("PATCH", "/api/people/{name}", models.PersonChange, "people", 404)
    def rename(name: Name, body: models.NameBody) -> models.PersonChange:
        """Rename a person (merged into the other person when the new name exists)."""
        new = clean_name(body.name)
        return models.PersonChange(name=new, faces=console.library.rename(name, new))

    @change("DELETE", "/api/people/{name}", models.Removed, "people", 404)
    def remove(name: Name) -> models.Removed:
        name = clean_name(name)
        return models.Removed(name=name, removed=console.library.remove(name))

    # --- unknown faces and recordings -----------------------------------------------------
    @get_json("/api/unknown/clusters", models.Clusters, "events")
    def unknown_clusters(
        days: Annotated[float, Query(gt=0, le=3650, description="sightings of the last N days")] = 7.0,
        limit: Annotated[int, Query(ge=1, le=500, description="newest N sightings")] = 100,
    ) -> models.Clusters:
        """Recent Unknown sightings nobody enrolled yet, grouped by face (analysis' clustering)."""
        since = int(time.time() * 1000 - days * 86_400_000)
        recent = console.store.recent_unknown(limit, since)
        vectors = {i: v for i, (v, _) in console.store.embeddings([s.id for s in recent]).items()}
        groups, method = cluster_sightings(recent, vectors, console.threshold())
        return models.Clusters(
            clusters=[
                models.Cluster(
                    id=g.id,
                    size=len(g.members),
                    cohesion=g.cohesion,
                    event_ids=[s.id for s in g.members],
                    cameras=sorted({s.camera_id for s in g.members}),
                    first_seen=_time(min(s.first_seen_ms for s in g.members)),
                    last_seen=_time(max(s.last_seen_ms for s in g.members)),
                    snapshot_urls=[f"/api/events/{s.id}/snapshot.jpg" for s in g.members if s.snapshot][:12],
                )
                for g in groups
            ],
            method=method,
            sightings=len(recent),
        )

    @get_json("/api/recordings", list[models.CameraRecordings], "recordings")
    def recordings() -> list[models.CameraRecordings]:
        """The overlay's H.264 MP4 segments per camera, oldest first."""
        out = []
        for cid in camera_ids:
            files = []
            for path in segments(console.config, cid):
                st = path.stat()
                files.append(
                    models.Recording(
                        name=path.name,
                        url=f"/api/recordings/{cid}/{quote(path.name)}",
                        bytes=st.st_size,
                        modified=datetime.fromtimestamp(st.st_mtime, UTC),
                    )
                )
            out.append(models.CameraRecordings(camera_id=cid, files=files))
        return out

    @get_file("/api/recordings/{camera_id}/{file_name}", "video/mp4", "recordings", 404)
    def recording(camera_id: CameraId, file_name: Annotated[str, PathParam(max_length=255)]) -> FileResponse:
        """One segment (range requests work, so the browser can seek)."""
        known_camera(camera_id)
        path = find(console.config, camera_id, file_name)
        if path is None:
            raise NotFound(f"no recording {file_name!r} of camera {camera_id}")
        return FileResponse(path, media_type="video/mp4")

    # --- the page -------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    limit = console.config.web.max_upload_bytes if console.config.web else 1 << 20
    app.add_middleware(BodyLimit, max_bytes=limit + MULTIPART_SLACK)
    return app


class UpstreamError(HttpProblem):
    """The live view (overlay) did not answer."""


__all__ = ["Console", "create_app"]
