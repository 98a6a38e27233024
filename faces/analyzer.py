"""In-process detect + embed for single images: enrollment, 1:1 verification, 1:K identification.

The pipeline does the same work in separate processes; these commands, the analysis tools, the
benchmark and the console's enrollment need one answer, now.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bus.config import DetectConfig
from bus.errors import FacestreamError
from bus.records import Face
from detect.factory import make_detector
from detect.upright import upright_landmarks
from embed.model import EmbeddingModel
from faces.images import read_image


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
