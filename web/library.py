"""The face library: people in the gallery file, with the photos the console enrolled them from.

Every change loads the gallery, changes it and saves it atomically (temp + rename, 0600) under a
lock (a thread lock and an flock on `<gallery>.lock`, so two console processes never lose each
other's change); match sees the new file within a second (its hot reload) and names faces with
it from then on. Photos live in `<data_dir>/library/<hash of the name>/`: a name never becomes a
path, whatever it holds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bus.config import PipelineConfig
from bus.errors import FacestreamError
from faces.analyzer import FaceAnalyzer
from faces.enroll import check_new_face
from match.gallery import UNKNOWN, Gallery
from match.gallery import check_name as _gallery_check_name

PHOTO_ID = re.compile(r"^[0-9a-f]{16}$")
THUMB_SIDE = 256
MARGIN = 0.4


class NotFound(FacestreamError):
    """A person or photo that does not exist (HTTP 404)."""


class Conflict(FacestreamError):
    """A change that does not fit the gallery, e.g. another model's embedding (HTTP 409)."""


def _refuse_lookalikes(gallery: Gallery, vectors: np.ndarray, name: str) -> None:
    """A face the gallery already names as someone else, enrolled as `name`, would let the
    pipeline show either name on both people (as `facestream enroll` refuses it too)."""
    for vector in vectors:
        try:
            check_new_face(gallery, {}, vector, name, override=None)
        except FacestreamError as exc:
            raise Conflict(str(exc)) from exc


def clean_name(name: str) -> str:
    """The name without surrounding whitespace, checked by the gallery's rule; the reserved name
    is a conflict (409), not a malformed request."""
    name = name.strip() if isinstance(name, str) else name
    if isinstance(name, str) and name.lower() == UNKNOWN.lower():
        raise Conflict(f"{UNKNOWN!r} is reserved for faces below the threshold; pick another name")
    return _gallery_check_name(name)


@dataclass(frozen=True)
class Person:
    name: str
    faces: int  # vectors in the gallery
    photos: list[str]  # photo ids, oldest first


def face_thumbnail(image: np.ndarray, box: tuple[float, float, float, float]) -> bytes:
    """A JPEG of the face with some margin, at most THUMB_SIDE pixels on its longer side."""
    x, y, w, h = box
    pad = max(w, h) * MARGIN
    rows, cols = image.shape[:2]
    top, left = int(max(0, y - pad)), int(max(0, x - pad))
    crop = image[top : int(min(rows, y + h + pad)), left : int(min(cols, x + w + pad))]
    if crop.size == 0:
        crop = image
    scale = min(1.0, THUMB_SIDE / max(crop.shape[:2]))
    if scale < 1.0:
        crop = cv2.resize(
            crop, (round(crop.shape[1] * scale), round(crop.shape[0] * scale)), interpolation=cv2.INTER_AREA
        )
    ok, buf = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 88])
    if not ok:
        raise FacestreamError("could not encode the face thumbnail")
    return buf.tobytes()


class Library:
    def __init__(self, config: PipelineConfig, photos_root: Path) -> None:
        self.config = config
        self.gallery_path = Path(config.match.gallery)
        self.photos_root = Path(photos_root)
        self._lock = threading.Lock()
        self._analyzer_lock = threading.Lock()
        self._analyzer: FaceAnalyzer | None = None

    # --- pieces ------------------------------------------------------------------------------
    def analyzer(self) -> FaceAnalyzer:
        """Detector and embedder, loaded on the first upload (the same model as the pipeline)."""
        with self._analyzer_lock:
            if self._analyzer is None:
                cfg = self.config
                self._analyzer = FaceAnalyzer(cfg.detect, cfg.embed.model, cfg.embed.cache_dir)
            return self._analyzer

    def _folder(self, name: str) -> Path:
        return self.photos_root / hashlib.sha256(name.encode()).hexdigest()[:32]

    @contextlib.contextmanager
    def _editing(self) -> Iterator[Gallery]:
        """The gallery to change; saved atomically when the block ends without an error."""
        with self._lock:
            lock_path = self.gallery_path.with_name(self.gallery_path.name + ".lock")
            with open(lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                gallery = Gallery.load(self.gallery_path)
                yield gallery
                gallery.save(self.gallery_path)

    def _add_photos(self, name: str, jpegs: list[bytes]) -> None:
        folder = self._folder(name)
        folder.mkdir(parents=True, exist_ok=True)
        for jpeg in jpegs:
            (folder / f"{secrets.token_hex(8)}.jpg").write_bytes(jpeg)

    # --- reading -----------------------------------------------------------------------------
    def people(self) -> list[Person]:
        gallery = Gallery.load(self.gallery_path)
        return [Person(name, count, self.photos(name)) for name, count in gallery.counts().items()]

    def person(self, name: str) -> Person:
        name = clean_name(name)
        count = Gallery.load(self.gallery_path).counts().get(name)
        if count is None:
            raise NotFound(f"{name!r} is not in the gallery")
        return Person(name, count, self.photos(name))

    def photos(self, name: str) -> list[str]:
        folder = self._folder(name)
        if not folder.is_dir():
            return []
        files = sorted(folder.glob("*.jpg"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [p.stem for p in files if PHOTO_ID.match(p.stem)]

    def photo_path(self, name: str, photo_id: str) -> Path:
        name = clean_name(name)
        path = self._folder(name) / f"{photo_id}.jpg"
        if not PHOTO_ID.match(photo_id) or not path.is_file():
            raise NotFound(f"no photo {photo_id!r} of {name!r}")
        return path

    # --- changing ----------------------------------------------------------------------------
    def add_photo(self, name: str, image: np.ndarray) -> int:
        """Enroll the largest face of a photo; returns the person's face count."""
        name = clean_name(name)
        analyzer = self.analyzer()
        found = analyzer.largest_face(image, "the photo")
        with self._editing() as gallery:
            if gallery.model_id != analyzer.model_id:
                raise Conflict(
                    f"the gallery holds {gallery.model_id} vectors, this console embeds with {analyzer.model_id}"
                )
            _refuse_lookalikes(gallery, found.vector[None, :], name)
            gallery.add(name, found.vector[None, :])
            self._add_photos(name, [face_thumbnail(image, found.face.box)])
            return gallery.counts()[name]

    def add_vectors(self, name: str, vectors: np.ndarray, model_id: str | None, jpegs: list[bytes]) -> int:
        """Enroll stored embeddings (sightings); returns the person's face count."""
        name = clean_name(name)
        with self._editing() as gallery:
            if model_id != gallery.model_id:
                raise Conflict(
                    f"these faces were embedded by {model_id}, the gallery holds {gallery.model_id} vectors"
                )
            _refuse_lookalikes(gallery, vectors, name)
            gallery.add(name, vectors)
            self._add_photos(name, jpegs)
            return gallery.counts()[name]

    def remove(self, name: str) -> int:
        name = clean_name(name)
        with self._editing() as gallery:
            removed = gallery.remove(name)
            if not removed:
                raise NotFound(f"{name!r} is not in the gallery")
        shutil.rmtree(self._folder(name), ignore_errors=True)
        return removed

    def rename(self, old: str, new: str) -> int:
        """Give a person another name (merged into that person when the name is taken)."""
        old = clean_name(old)
        new = clean_name(new)
        if old == new:
            return self.person(old).faces
        with self._editing() as gallery:
            vectors = gallery.vectors_of(old)
            if not len(vectors):
                raise NotFound(f"{old!r} is not in the gallery")
            gallery.remove(old)
            gallery.add(new, vectors)
            count = gallery.counts()[new]
        source, target = self._folder(old), self._folder(new)
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            for photo in source.glob("*.jpg"):
                photo.replace(target / photo.name)
            shutil.rmtree(source, ignore_errors=True)
        return count
