"""One pass over the photos: read each once, detect, embed with every model, tally the detectors.

Every command computes its numbers from this one pass (embeddings are cached in memory and
written to the output folder), so a folder is never embedded twice per run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from analysis.dataset import Photo
from bus.errors import FacestreamError
from bus.records import Face
from detect.base import Detector
from embed.model import EmbeddingModel
from faces.images import read_image

log = logging.getLogger(__name__)

THUMB_SIZE = 48
THUMB_MARGIN = 0.25  # of the box side, around the face


@dataclass(frozen=True)
class FaceItem:
    path: Path
    label: str | None
    face: int  # 0 = the largest face of its photo
    box: tuple[float, float, float, float]
    score: float


@dataclass
class DetectorTally:
    """Faces found / images for one detector over the photos that could be read."""

    name: str
    images: int = 0
    with_face: int = 0
    faces: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.with_face / self.images if self.images else float("nan")

    @property
    def ms_per_image(self) -> float:
        return 1000.0 * self.seconds / self.images if self.images else float("nan")


@dataclass
class EmbeddingRun:
    model_ids: list[str]
    items: list[FaceItem] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)  # per model: (len(items), dim)
    thumbs: list[np.ndarray] = field(default_factory=list)  # BGR, when asked for
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable or faceless
    images: int = 0
    tallies: list[DetectorTally] = field(default_factory=list)  # [primary, *extra]

    @property
    def labels(self) -> list[str]:
        return [i.label or "" for i in self.items]

    def save(self, path: Path) -> None:
        """The cached embeddings (first model) with their photos, to reuse outside facestream."""
        arrays: dict[str, np.ndarray] = {
            "paths": np.array([str(i.path) for i in self.items], dtype=str),
            "labels": np.array(self.labels, dtype=str),
            "faces": np.array([i.face for i in self.items], dtype=np.int64),
            "boxes": np.array([i.box for i in self.items], dtype=np.float32).reshape(-1, 4),
            "model_ids": np.array(self.model_ids, dtype=str),
        }
        arrays.update({f"vectors_{m}": v for m, v in enumerate(self.vectors)})
        save: Any = np.savez  # its stub types every keyword as allow_pickle
        save(path, **arrays)


def area(face: Face) -> float:
    return float(face.box[2] * face.box[3])


def face_crop(image: np.ndarray, box: tuple[float, float, float, float], margin: float) -> np.ndarray:
    """A square crop centred on the face, `margin` box sides wider on each side, cut at the edges."""
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * margin)
    cx, cy = x + w / 2, y + h / 2
    height, width = image.shape[:2]
    x0, y0 = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    x1, y1 = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
    return np.ascontiguousarray(image[y0:y1, x0:x1])


def thumbnail(
    image: np.ndarray, box: tuple[float, float, float, float], size: int = THUMB_SIZE
) -> np.ndarray:
    crop = face_crop(image, box, THUMB_MARGIN)
    if crop.size == 0:
        return np.zeros((size, size, 3), np.uint8)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def embed_photos(
    photos: Sequence[Photo],
    detector: Detector,
    models: Sequence[EmbeddingModel],
    all_faces: bool = False,
    thumbs: bool = False,
    extra_detectors: Sequence[Detector] = (),
    progress: bool = True,
    desc: str = "embedding",
) -> EmbeddingRun:
    """Detect and embed every photo; unreadable photos and photos without a face are skipped and listed.

    all_faces=False keeps the largest face of each photo (labelled photos show one person).
    """
    run = EmbeddingRun(model_ids=[m.model_id for m in models])
    run.tallies = [DetectorTally(detector.name), *(DetectorTally(d.name) for d in extra_detectors)]
    rows: list[list[np.ndarray]] = [[] for _ in models]
    for photo in tqdm(photos, desc=desc, unit="image", disable=not progress):
        try:
            image = read_image(photo.path)
        except FacestreamError as exc:
            run.skipped.append((photo.path, str(exc)))
            log.warning("skipped %s", exc)
            continue
        run.images += 1
        faces = _timed(detector, image, run.tallies[0])
        for other, tally in zip(extra_detectors, run.tallies[1:], strict=True):
            _timed(other, image, tally)
        if not faces:
            run.skipped.append((photo.path, "no face found"))
            continue
        faces = sorted(faces, key=area, reverse=True)
        if not all_faces:
            faces = faces[:1]
        for n, face in enumerate(faces):
            run.items.append(FaceItem(photo.path, photo.label, n, face.box, float(face.score)))
            if thumbs:
                run.thumbs.append(thumbnail(image, face.box))
        for m, model in enumerate(models):
            rows[m].append(model.embed_faces(image, faces))
    run.vectors = [
        np.concatenate(r).astype(np.float32) if r else np.zeros((0, model.dim), np.float32)
        for r, model in zip(rows, models, strict=True)
    ]
    return run


def _timed(detector: Detector, image: np.ndarray, tally: DetectorTally) -> list[Face]:
    start = time.perf_counter()
    faces = detector.detect(image)
    tally.seconds += time.perf_counter() - start
    tally.images += 1
    tally.faces += len(faces)
    tally.with_face += bool(faces)
    return faces


def require_faces(run: EmbeddingRun, folder: Path) -> None:
    if not run.items:
        reasons = "; ".join(f"{p.name}: {r}" for p, r in run.skipped[:3])
        raise FacestreamError(f"no face found in any photo of {folder} ({reasons})")
