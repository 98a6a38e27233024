"""In-process detect + embed for single images: enrollment, 1:1 verification, 1:K identification.

The pipeline does the same work in separate processes; these commands need one answer, now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bus.config import DetectConfig
from bus.errors import FacestreamError
from bus.records import Face
from detect.factory import make_detector
from detect.upright import upright_landmarks
from embed.model import EmbeddingModel

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_NUMBERED = re.compile(r"^(.*?)[_-]\d+$")


def name_from_stem(stem: str) -> str:
    """Whose photo a loose file is: `alice.jpg` and `alice_2.jpg` both belong to alice."""
    match = _NUMBERED.match(stem)
    return match.group(1) if match and match.group(1) else stem


def read_image(path: Path) -> np.ndarray:
    """Read a BGR image or fail with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise FacestreamError(f"image {path} not found")
    if path.is_dir():
        raise FacestreamError(f"{path} is a folder, expected an image file")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise FacestreamError(f"cannot read image {path}: not an image or a corrupt file")
    return image


@dataclass(frozen=True)
class FoundFace:
    face: Face
    vector: np.ndarray  # (dim,) float32, L2-normalised


class FaceAnalyzer:
    def __init__(
        self,
        detect: DetectConfig | None = None,
        model: str = "sface",
        cache_dir: Path | None = None,
    ) -> None:
        self.detect_config = detect or DetectConfig()
        self.detector = make_detector(self.detect_config)
        self.model = EmbeddingModel.load(model, cache_dir=cache_dir)

    @property
    def model_id(self) -> str:
        return self.model.card.model_id

    @property
    def threshold(self) -> float:
        return float(self.model.card.threshold)

    def faces(self, image: np.ndarray) -> list[FoundFace]:
        """Every face with its embedding, aligned as the pipeline aligns (upright first)."""
        faces = self.detector.detect(image)
        if not faces:
            return []
        if self.detect_config.upright:
            for face in faces:
                if face.landmarks is not None:
                    level = upright_landmarks(self.detector, image, face)
                    if level is not None:
                        face.landmarks = level
        vectors = self.model.embed_faces(image, faces)
        return [FoundFace(f, v) for f, v in zip(faces, vectors, strict=True)]

    def largest_face(self, image: np.ndarray, what: str) -> FoundFace:
        """The biggest face of an image (enrollment photos show one person)."""
        found = self.faces(image)
        if not found:
            raise FacestreamError(f"no face found in {what}")
        return max(found, key=lambda f: f.face.box[2] * f.face.box[3])

    def embed_file(self, path: Path) -> FoundFace:
        return self.largest_face(read_image(path), str(path))
