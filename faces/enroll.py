"""Enrollment: which photos belong to whom, and adding them to a gallery without losing any."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bus.errors import FacestreamError
from faces.analyzer import FaceAnalyzer
from faces.images import IMAGE_SUFFIXES, name_from_stem
from match.gallery import Gallery
from match.index import IndexKind

log = logging.getLogger("facestream.enroll")
# Two faces this close are one photo: identical pixels (the same file, or a lossless copy) score 1.0.
# Measured with SFace: a JPEG re-encode at quality 70 scores 0.98, a 2-degree turn 0.995, other
# photos of the same person 0.5-0.85; those are enrolled as new photos.
DUPLICATE_SIMILARITY = 0.9999


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def enrollment_items(source: Path, name: str | None = None) -> list[tuple[str, Path]]:
    """(name, photo) pairs from a folder (`name.jpg`, `name_2.jpg` or `name/*.jpg`) or one image."""
    source = Path(source)
    if not source.exists():
        raise FacestreamError(f"{source} not found")
    if source.is_file():
        if not _is_image(source):
            raise FacestreamError(f"{source} is not an image ({', '.join(IMAGE_SUFFIXES)})")
        return [(name or name_from_stem(source.stem), source)]
    items: list[tuple[str, Path]] = []
    for entry in sorted(source.iterdir()):
        if _is_image(entry):
            items.append((name or name_from_stem(entry.stem), entry))
        elif entry.is_dir():
            items.extend((name or entry.name, p) for p in sorted(entry.iterdir()) if _is_image(p))
    if not items:
        raise FacestreamError(f"no images in {source} (expected name.jpg or name/*.jpg)")
    return items


@dataclass
class EnrollReport:
    enrolled: dict[str, int] = field(default_factory=dict)  # name -> photos (camera: faces) added
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # photo, reason
    converted_from: IndexKind | None = None  # the index kind the gallery had, when it was changed
    snapshot: Path | None = None  # camera: the enrolled frame, when it was asked for and written


def with_index(gallery: Gallery, index: IndexKind | None) -> tuple[Gallery, IndexKind | None]:
    """The gallery with the asked index kind, and the kind it had when that was another."""
    if index is None or index == gallery.index_kind:
        return gallery, None
    return gallery.with_index(index), gallery.index_kind


def open_or_create(
    path: Path, analyzer: FaceAnalyzer, index: IndexKind | None = None
) -> tuple[Gallery, IndexKind | None]:
    """Load (and convert to `index`) or create a gallery; also the kind it had if converted."""
    dim = analyzer.model.card.embedding_dim
    if Path(path).exists():
        return with_index(Gallery.load(path, expect_model_id=analyzer.model_id, expect_dim=dim), index)
    return Gallery.create(analyzer.model_id, dim, analyzer.threshold, index or "flat"), None


def convert_gallery(path: Path, index: IndexKind) -> IndexKind | None:
    """Change an existing gallery's index kind in place (saved atomically); returns the old kind.

    None when it already had that kind (the file is not written). No model is needed: the
    vectors are kept as they are.
    """
    if not Path(path).exists():
        raise FacestreamError(f"gallery {path} not found: nothing to convert (give photos to create it)")
    gallery, old = with_index(Gallery.load(path), index)
    if old is not None:
        gallery.save(path)
        log.info("gallery %s: index converted from %s to %s", path, old, index)
    return old


def enroll(
    gallery_path: Path,
    sources: list[Path],
    analyzer: FaceAnalyzer,
    name: str | None = None,
    progress: bool = True,
    index: IndexKind | None = None,
    allow_lookalike: bool = False,
) -> EnrollReport:
    """Add every usable photo; a photo without a face is skipped and reported, never silently.

    A face that the gallery already names as someone else (at its threshold) is skipped unless
    `allow_lookalike`: enrolled under another name it would make the pipeline show either name
    on both people.

    `index` converts an existing gallery to that kind (or creates a new one with it); the
    conversion is saved together with the new faces, so a failed enrollment changes nothing.
    """
    items = [item for src in sources for item in enrollment_items(src, name)]
    gallery, converted_from = open_or_create(gallery_path, analyzer, index)
    report = EnrollReport(converted_from=converted_from)
    vectors: dict[str, list[np.ndarray]] = {}
    for person, photo in tqdm(items, desc="enrolling", unit="photo", disable=not progress):
        try:
            found = analyzer.embed_file(photo)
            check_new_face(gallery, vectors, found.vector, person, allow_lookalike)
        except FacestreamError as exc:
            report.skipped.append((photo, str(exc)))
            log.info("skipped %s: %s", photo, exc)  # in the report: the caller says it once
            continue
        vectors.setdefault(person, []).append(found.vector)
    if not vectors:
        reasons = "; ".join(reason for _, reason in report.skipped[:3])
        raise FacestreamError(f"nothing enrolled: {reasons}")
    for person, vecs in vectors.items():
        gallery.add(person, np.stack(vecs).astype(np.float32))
        report.enrolled[person] = len(vecs)
    gallery.save(gallery_path)
    return report


def check_new_face(
    gallery: Gallery,
    pending: dict[str, list[np.ndarray]],
    vector: np.ndarray,
    person: str,
    allow_lookalike: bool = False,
    override: str | None = "--allow-lookalike",
) -> None:
    """Refuse a face that is already enrolled (the same photo twice), in the gallery or in this
    run, and one that is already named as somebody else (unless `allow_lookalike`; `override`
    names the way to insist, None where there is none)."""
    best = gallery.identify(vector[None, :], threshold=DUPLICATE_SIMILARITY)[0]
    if best.best_name is not None and best.similarity >= DUPLICATE_SIMILARITY:
        raise FacestreamError(
            f"already enrolled as {best.best_name} (the same photo, similarity {best.similarity:.3f})"
        )
    closest = {name: float(np.max(np.stack(vecs) @ vector)) for name, vecs in pending.items()}
    for name, similarity in closest.items():
        if similarity >= DUPLICATE_SIMILARITY:
            raise FacestreamError(f"the same photo as another one of {name} in this enrollment")
    if allow_lookalike:
        return
    others: list[tuple[str, float]] = []
    if best.best_name is not None and best.best_name != person:
        others.append((best.best_name, best.similarity))
    others += [(name, similarity) for name, similarity in closest.items() if name != person]
    for other, similarity in others:
        if similarity >= gallery.threshold:
            raise FacestreamError(
                f"looks like {other} (similarity {similarity:.2f}, at or above the gallery's threshold "
                f"{gallery.threshold:.3f}): as {person} it would be shown as either; check the name"
                + ("" if override is None else f", or pass {override}")
            )


def enroll_from_camera(
    gallery_path: Path,
    source: str,
    name: str,
    analyzer: FaceAnalyzer,
    max_frames: int = 100,
    snapshot: Path | None = None,
    index: IndexKind | None = None,
    allow_lookalike: bool = False,
) -> EnrollReport:
    """One-shot enrollment from a live camera (or a video): the first frame that shows a face.

    The largest face of that frame is enrolled; `snapshot` keeps the frame so that the user can
    see whom they enrolled (report.snapshot is None when it could not be written). `index` as
    in enroll().
    """
    import cv2

    from capture.sources import open_source

    gallery, converted_from = open_or_create(gallery_path, analyzer, index)
    report = EnrollReport(converted_from=converted_from)
    camera = open_source(source)
    try:
        for _ in range(max_frames):
            frame = camera.read()
            if frame is None:
                break
            found = analyzer.faces(frame)
            if not found:
                continue
            best = max(found, key=lambda f: f.face.box[2] * f.face.box[3])
            check_new_face(gallery, {}, best.vector, name, allow_lookalike)
            gallery.add(name, best.vector[None, :])
            gallery.save(gallery_path)
            report.enrolled[name] = 1
            if snapshot is not None and not cv2.imwrite(str(snapshot), frame):
                log.warning("could not write the snapshot %s", snapshot)
                return report
            report.snapshot = snapshot
            return report
    finally:
        camera.close()
    raise FacestreamError(f"no face in the first {max_frames} frames of camera {source}")
