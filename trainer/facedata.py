"""Training faces from a folder: find each photo's face with our detectors, align it as embed will.

Layouts: `folder/<person>/*.jpg` or flat `folder/<person>_<n>.jpg` (the demo photos' naming).
Alignment is embed's own 5-point warp (embed.align), so a trained model sees the same crops
at run time as in training.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bus.config import DetectConfig
from bus.errors import FacestreamError

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def find_images(folder: Path) -> list[tuple[str, Path]]:
    """(person, path) pairs, sorted; people come from sub-folders or from `name_<n>` file stems."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FacestreamError(f"training folder not found: {folder}")
    items: list[tuple[str, Path]] = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        items += [(sub.name, f) for f in sorted(sub.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    for f in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        items.append((re.sub(r"[_-]?\d+$", "", f.stem) or f.stem, f))
    if not items:
        raise FacestreamError(f"no images in {folder} (expected person/*.jpg or person_1.jpg files)")
    return items


@dataclass
class FaceSet:
    crops: np.ndarray  # (n, size, size, 3) uint8 BGR, aligned
    people: list[str]  # person of each crop
    paths: list[Path]
    skipped: list[Path]  # unreadable images or no face found

    @property
    def labels(self) -> np.ndarray:
        names = sorted(set(self.people))
        return np.array([names.index(p) for p in self.people], np.int64)


def make_detector(kind: str, mtcnn_dir: Path | None) -> object:
    """One of our detect backends (imported lazily: the trainer is an offline tool)."""
    cfg = DetectConfig(backend=kind, mtcnn_dir=mtcnn_dir, score_threshold=0.7, min_face=24, max_side=1280)  # type: ignore[arg-type]
    from detect.factory import make_detector as factory

    return factory(cfg)


def load_faces(folder: Path, size: int, detector: str = "yunet", mtcnn_dir: Path | None = None) -> FaceSet:
    from embed.align import align_5point

    det = make_detector(detector, mtcnn_dir)
    crops, people, paths, skipped = [], [], [], []
    for person, path in find_images(folder):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            log.warning("skipping unreadable image %s", path)
            skipped.append(path)
            continue
        faces = [f for f in det.detect(image) if f.landmarks is not None]  # type: ignore[attr-defined]
        if not faces:
            log.warning("skipping %s: no face found", path)
            skipped.append(path)
            continue
        face = max(faces, key=lambda f: f.box[2] * f.box[3])  # photos of one person: the biggest face
        crops.append(align_5point(image, face.landmarks, (size, size)))
        people.append(person)
        paths.append(path)
    if len(set(people)) < 2:
        raise FacestreamError(f"{folder}: faces of at least 2 people are needed, found {sorted(set(people))}")
    return FaceSet(np.stack(crops), people, paths, skipped)


def parity_crops(folder: Path, size: int, limit: int = 8) -> list[np.ndarray]:
    """Real aligned faces (BGR, size x size) from a folder of photos, for Keras/ONNX parity checks;
    photos where no face is found are used whole, resized."""
    from embed.align import align_5point

    det = make_detector("yunet", None)
    crops = []
    for _, path in find_images(folder)[:limit]:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        faces = [f for f in det.detect(image) if f.landmarks is not None]  # type: ignore[attr-defined]
        if faces:
            crops.append(align_5point(image, faces[0].landmarks, (size, size)))
        else:
            crops.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
    if not crops:
        raise FacestreamError(f"no readable images in {folder} for the parity check")
    return crops


def default_photos() -> Path:
    """The demo photos that ship with facestream (found without importing deploy)."""
    import importlib.util

    spec = importlib.util.find_spec("deploy")
    if spec is None or not spec.submodule_search_locations:
        raise FacestreamError("demo photos not found: pass --parity-images DIR")
    return Path(next(iter(spec.submodule_search_locations))) / "demo_assets" / "photos"


def holdout(people: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Train / probe indices: one photo (the last) of everyone with 2 or more is kept for testing."""
    probe = []
    for person in sorted(set(people)):
        idx = [i for i, p in enumerate(people) if p == person]
        if len(idx) >= 2:
            probe.append(idx[-1])
    train = [i for i in range(len(people)) if i not in probe]
    return np.array(train, np.int64), np.array(probe, np.int64)


def augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror, +-8 degrees, +-6 % scale, +-3 px shift, +-15 % contrast, +-0.15 brightness (preprocessed units)."""
    h, w = img.shape[:2]
    if rng.random() < 0.5:
        img = img[:, ::-1]
    angle = rng.uniform(-8, 8)
    scale = rng.uniform(0.94, 1.06)
    m = np.asarray(cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale), np.float64)
    m[:, 2] += rng.uniform(-3, 3, size=2)
    out = cv2.warpAffine(np.ascontiguousarray(img, np.float32), m, (w, h), borderMode=cv2.BORDER_REFLECT)
    out = out.reshape(img.shape) * rng.uniform(0.85, 1.15) + rng.uniform(-0.15, 0.15)
    return out.astype(np.float32)
