"""The console's HTTP API over real HTTP, against the real running pipeline (see conftest)."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import httpx
import numpy as np

from tests.conftest import PHOTOS
from tests.integration.console.conftest import MAX_UPLOAD, READ, WRITE, Console


def _jpeg(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def _events(console: Console, **params: Any) -> dict[str, Any]:
    with console.client() as c:
        resp = c.get("/api/events", params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_health_needs_no_token_and_shows_every_stage(console: Console) -> None:
    def all_up() -> dict[str, Any] | None:
        with console.client(token=None) as c:
            health: dict[str, Any] = c.get("/api/health").json()
        return health if all(s["up"] for s in health["stages"]) else None

    health = console.wait_for("every stage up", all_up)
    assert health["status"] == "ok"
    names = sorted({s["name"] for s in health["stages"]})
    assert names == ["capture", "detect", "embed", "events", "match", "overlay", "web"]
    cams = {c["id"]: c for c in health["cameras"]}
    assert set(cams) == {"carphone", "stills"}
    assert cams["carphone"]["fps"] > 1 and cams["carphone"]["last_result_age_s"] < 5
    assert health["database"]["kind"] == "sqlite"


def test_tokens_read_only_token_and_cookie(console: Console) -> None:
    with console.client(token=None) as c:
        denied = c.get("/api/events")
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
        assert (
            c.get("/api/events", headers={"Authorization": "Bearer nope-nope-nope-nope"}).status_code == 401
        )
    with httpx.Client(base_url=console.url, cookies={"facestream_token": READ}) as jar:
        assert jar.get("/api/events").status_code == 200  # what <img src> sends
    with httpx.Client(base_url=console.url, cookies={"facestream_token": WRITE}) as jar:
        # A cookie never authorises a change (another site's form could send it).
        assert jar.delete("/api/people/macron").status_code == 401
    with console.client(token=READ) as c:
        assert c.get("/api/people").status_code == 200
        refused = c.patch("/api/people/macron", json={"name": "emmanuel"})
        assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
    with console.client() as c:
        assert c.get("/api/cameras").status_code == 200


def test_cameras_snapshot_and_live_mjpeg(console: Console) -> None:
    with console.client() as c:
        cams = {cam["id"]: cam for cam in c.get("/api/cameras").json()}
        assert cams["carphone"]["stream_url"] == "/api/cameras/carphone/stream.mjpeg"
        snap = c.get(cams["carphone"]["snapshot_url"])
        assert snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg"
        assert _jpeg(snap.content).shape == (144, 176, 3)
        assert c.get("/api/cameras/nope/snapshot.jpg").status_code == 404
        with c.stream("GET", cams["stills"]["stream_url"]) as stream:
            assert stream.headers["content-type"].startswith("multipart/x-mixed-replace")
            data = b""
            for chunk in stream.iter_bytes():
                data += chunk
                if data.count(b"\xff\xd9") >= 2:
                    break
        start = data.index(b"\xff\xd8")
        assert _jpeg(data[start : data.index(b"\xff\xd9", start) + 2]).shape == (240, 320, 3)


def test_events_filters_paging_and_snapshots(console: Console) -> None:
    def sightings() -> dict[str, Any] | None:
        page = _events(console, unknown=True, camera="carphone")
        done = [e for e in page["items"] if e["snapshot_url"] and e["has_embedding"]]
        stills = _events(console, camera="stills")["items"]
        return page if done and stills else None

    page = console.wait_for("Unknown sightings with snapshots on both cameras", sightings)
    assert all(
        e["camera_id"] == "carphone" and e["unknown"] and e["name"] == "Unknown" for e in page["items"]
    )
    event = next(e for e in page["items"] if e["snapshot_url"])
    assert event["frames"] >= 1 and event["first_seen"] <= event["last_seen"]
    with console.client() as c:
        snap = c.get(event["snapshot_url"])
        assert snap.status_code == 200 and min(_jpeg(snap.content).shape[:2]) >= 30
        assert c.get(f"/api/events/{event['id']}").json()["id"] == event["id"]
        assert c.get("/api/events/2147483647").status_code == 404
        assert c.get("/api/events/2147483647/snapshot.jpg").status_code == 404
        assert c.get("/api/events", params={"limit": 0}).status_code == 422
    everything = _events(console, limit=500)
    assert everything["total"] >= 2
    second = _events(console, limit=1, offset=1)
    assert second["items"][0]["id"] == everything["items"][1]["id"] or everything["total"] > 2
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert _events(console, since=future)["total"] == 0
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert _events(console, until=past)["total"] == 0
    assert _events(console, name="nobody-of-that-name")["total"] == 0
    assert all(not e["unknown"] for e in _events(console, unknown=False)["items"])


def _cluster_of(console: Console, photo_camera: str = "stills") -> list[dict[str, Any]]:
    with console.client() as c:
        clusters: list[dict[str, Any]] = c.get("/api/unknown/clusters").json()["clusters"]
    return [cl for cl in clusters if cl["cameras"] == [photo_camera]]


def test_a_sighting_enrolled_from_the_console_is_named_live(console: Console) -> None:
    """Sunak's sighting -> a new person; match reloads the gallery and names him on the camera."""

    def sunak_sighting() -> dict[str, Any] | None:
        items = _events(console, camera="stills", unknown=True, limit=100)["items"]
        ok = [e for e in items if e["has_embedding"] and e["snapshot_url"]]
        return ok[-1] if ok else None  # the oldest: the first slide of the clip is Sunak

    event = console.wait_for("an Unknown sighting on the stills camera", sunak_sighting)
    with console.client() as c:
        done = c.post(f"/api/events/{event['id']}/enroll", json={"name": "person_a"})
        assert done.status_code == 200, done.text
        assert done.json() == {"name": "person_a", "faces": 1, "event_ids": [event["id"]]}
        people = {p["name"]: p for p in c.get("/api/people").json()}
        assert people["person_a"]["faces"] == 1 and len(people["person_a"]["photo_urls"]) == 1
        assert _jpeg(c.get(people["person_a"]["photo_urls"][0]).content).size > 0
        assert c.get(f"/api/events/{event['id']}").json()["enrolled_as"] == "person_a"
        assert c.post("/api/events/2147483647/enroll", json={"name": "x"}).status_code == 404
        assert c.post(f"/api/events/{event['id']}/enroll", json={"name": "Unknown"}).status_code == 409
        assert c.post(f"/api/events/{event['id']}/enroll", json={"name": "a/b"}).status_code == 400

    def named_live() -> bool:
        with console.client() as c:
            cams = {cam["id"]: cam for cam in c.get("/api/cameras").json()}
        return any(f["name"] == "person_a" for f in cams["stills"]["faces"])

    console.wait_for("person_a named on the stills camera", named_live, timeout_s=90)


def test_upload_rename_delete(console: Console) -> None:
    photo = (PHOTOS / "ardern_1.jpg").read_bytes()
    with console.client() as c:
        added = c.post("/api/people/jacinda/faces", files={"photo": ("a.jpg", photo, "image/jpeg")})
        assert added.status_code == 200, added.text
        assert added.json() == {"name": "jacinda", "faces": 1}
        again = c.post(
            "/api/people/jacinda/faces", files={"photo": ("b.jpg", (PHOTOS / "ardern_2.jpg").read_bytes())}
        )
        assert again.json()["faces"] == 2
        person = c.get("/api/people/jacinda").json()
        assert person["faces"] == 2 and len(person["photo_urls"]) == 2
        renamed = c.patch("/api/people/jacinda", json={"name": "Jacinda Ardern"})
        assert renamed.status_code == 200 and renamed.json() == {"name": "Jacinda Ardern", "faces": 2}
        assert c.get("/api/people/jacinda").status_code == 404
        moved = c.get("/api/people/Jacinda%20Ardern").json()
        assert len(moved["photo_urls"]) == 2 and c.get(moved["photo_urls"][0]).status_code == 200
        assert c.delete("/api/people/Jacinda%20Ardern").json() == {"name": "Jacinda Ardern", "removed": 2}
        assert c.delete("/api/people/Jacinda%20Ardern").status_code == 404
        assert "Jacinda Ardern" not in {p["name"] for p in c.get("/api/people").json()}


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size in its header (its pixels are never decoded)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    idat = zlib.compress(b"\x00" * 64)
    body += struct.pack(">I", len(idat)) + b"IDAT" + idat + struct.pack(">I", zlib.crc32(b"IDAT" + idat))
    return b"\x89PNG\r\n\x1a\n" + body


def test_uploads_are_limited_and_decoded_safely(console: Console) -> None:
    with console.client() as c:

        def post(data: bytes, name: str = "someone") -> Any:
            return c.post(
                f"/api/people/{name}/faces", files={"photo": ("x", data, "application/octet-stream")}
            )

        assert post(b"not an image at all").status_code == 400
        assert post(b"").status_code == 400
        bomb = post(_png_header(30_000, 30_000))
        assert bomb.status_code == 413 and "pixels" in bomb.json()["detail"]
        assert post(b"\xff\xd8" + b"\x00" * (MAX_UPLOAD + 10)).status_code == 413
        assert post(b"\xff\xd8" + b"\x00" * (8 * MAX_UPLOAD)).status_code == 413  # refused before reading
        blank = cv2.imencode(".png", np.full((200, 200, 3), 90, np.uint8))[1].tobytes()
        assert "no face" in post(blank).json()["detail"]
        photo = (PHOTOS / "ardern_1.jpg").read_bytes()
        for bad in ("Unknown", "..%2F..%2Fetc", "a%5Cb", "tab%09in"):
            assert post(photo, bad).status_code in (400, 404, 409), bad
        assert "someone" not in {p["name"] for p in c.get("/api/people").json()}


def test_unknown_clusters_are_named_in_one_call(console: Console) -> None:
    def biden_cluster() -> list[dict[str, Any]]:
        return [cl for cl in _cluster_of(console) if cl["size"] >= 2]

    clusters = console.wait_for("a cluster of Unknown sightings on the stills camera", biden_cluster)
    group = clusters[0]
    assert len(group["event_ids"]) == group["size"] and group["cohesion"] > 0.8
    with console.client() as c:
        done = c.post("/api/people/person_b/sightings", json={"event_ids": group["event_ids"]})
        assert done.status_code == 200, done.text
        assert done.json()["faces"] >= group["size"]
        ids = set(group["event_ids"])
        left = [cl for cl in c.get("/api/unknown/clusters").json()["clusters"] if ids & set(cl["event_ids"])]
        assert left == []


def test_recordings_are_listed_and_play_as_h264(console: Console) -> None:
    with console.client() as c:
        cams = {r["camera_id"]: r for r in c.get("/api/recordings").json()}
        assert set(cams) == {"carphone", "stills"}
        first = cams["carphone"]["files"][0]
        assert first["name"] == "overlay-carphone.mp4" and first["bytes"] > 0
        head = c.get(first["url"], headers={"Range": "bytes=0-63"})
        assert head.status_code == 206 and head.headers["content-type"] == "video/mp4"
        assert head.content[4:8] == b"ftyp"
        assert c.get("/api/recordings/carphone/..%2Fpipeline.yaml").status_code == 404
        assert c.get("/api/recordings/carphone/pipeline.yaml").status_code == 404
