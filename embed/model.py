"""An ONNX face embedder driven by its model card: alignment, colours, layout and scaling.

Any ONNX file with facestream metadata works (the trainer writes it); "sface" is the bundled one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from bus.errors import FacestreamError
from bus.model_card import ModelCard
from bus.records import Face
from embed.align import align_5point, align_box
from embed.zoo import ensure_sface

log = logging.getLogger(__name__)

BUNDLED = ("sface",)


def _resolve(spec: str, cache_dir: Path | None) -> Path:
    if spec.strip().lower() == "sface":
        return ensure_sface(cache_dir)
    path = Path(spec).expanduser()
    if not path.exists():
        raise FacestreamError(
            f"embedding model {spec!r} not found: give 'sface' or the path of an .onnx file"
        )
    if not path.is_file():
        raise FacestreamError(f"embedding model {path} is not a file")
    return path


def _open_session(path: Path, threads: int, providers: Sequence[str] | None) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, int(threads))
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
        )
    except Exception as exc:  # onnxruntime raises its own (non-exported) exception types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FacestreamError(f"{path} is not a usable ONNX model ({reason[:200]})") from exc


def _expected_shape(card: ModelCard) -> list[int]:
    channels = 1 if card.color_order == "GRAY" else 3
    h, w = card.input_height, card.input_width
    return [channels, h, w] if card.layout == "NCHW" else [h, w, channels]


def _fixed(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


class EmbeddingModel:
    """One loaded embedder; `embed` returns L2-normalised float32 rows (cosine = dot product)."""

    def __init__(self, session: ort.InferenceSession, card: ModelCard, path: Path) -> None:
        self.session = session
        self.card = card
        self.path = path
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise FacestreamError(f"{path}: expected one image input, found {len(inputs)} inputs")
        self._input = inputs[0].name
        self._output = outputs[0].name
        shape = list(inputs[0].shape)
        expected = _expected_shape(card)
        if len(shape) != 4 or any(
            _fixed(d) is not None and d != e for d, e in zip(shape[1:], expected, strict=True)
        ):
            raise FacestreamError(
                f"{path}: input shape {shape} does not match the model card "
                f"({card.layout} {card.color_order} {card.input_width}x{card.input_height}, "
                f"expected [N, {', '.join(map(str, expected))}])"
            )
        out_shape = list(outputs[0].shape)
        out_dim = _fixed(out_shape[-1]) if out_shape else None
        if out_dim is not None and len(out_shape) == 2 and out_dim != card.embedding_dim:
            raise FacestreamError(
                f"{path}: output has {out_dim} values, the model card says {card.embedding_dim}"
            )
        self._fixed_batch = _fixed(shape[0])
        channels = 1 if card.color_order == "GRAY" else 3
        self._mean = np.asarray(card.mean[:channels], np.float32)
        self._std = np.asarray(card.std[:channels], np.float32)

    @classmethod
    def load(
        cls,
        spec: str,
        cache_dir: Path | None = None,
        threads: int = 1,
        providers: Sequence[str] | None = None,
    ) -> EmbeddingModel:
        """Open "sface" (bundled) or an ONNX file carrying a facestream model card."""
        path = _resolve(spec, cache_dir)
        session = _open_session(path, threads, providers)
        props = dict(session.get_modelmeta().custom_metadata_map)
        card = ModelCard.from_props(props, where=str(path))
        model = cls(session, card, path)
        log.info("embedding model %s (%d-d) from %s", card.model_id, card.embedding_dim, path)
        return model

    @property
    def model_id(self) -> str:
        return self.card.model_id

    @property
    def input_size(self) -> tuple[int, int]:
        return self.card.input_width, self.card.input_height

    @property
    def dim(self) -> int:
        return self.card.embedding_dim

    # --- alignment -------------------------------------------------------------------------
    def align(self, image: np.ndarray, face: Face, origin: tuple[float, float] = (0, 0)) -> np.ndarray:
        """The model's input crop of one face; `origin` is where `image` starts in the face's coordinates."""
        ox, oy = float(origin[0]), float(origin[1])
        if self.card.alignment == "5point" and face.landmarks is not None:
            landmarks = np.asarray(face.landmarks, np.float32) - np.array([ox, oy], np.float32)
            return align_5point(image, landmarks, self.input_size)
        x, y, w, h = face.box
        return align_box(image, (x - ox, y - oy, w, h), self.input_size)

    # --- inference -------------------------------------------------------------------------
    def preprocess(self, aligned: Sequence[np.ndarray]) -> np.ndarray:
        """BGR uint8 crops -> the float32 batch tensor the network expects."""
        w, h = self.input_size
        rows = []
        for i, img in enumerate(aligned):
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim not in (2, 3):
                raise FacestreamError(f"aligned face {i} must be a uint8 image")
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            if img.shape[2] != 3:
                raise FacestreamError(f"aligned face {i} must have 3 (BGR) channels, got {img.shape}")
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
            if self.card.color_order == "RGB":
                img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            elif self.card.color_order == "GRAY":
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
            rows.append(img)
        batch = np.stack(rows).astype(np.float32)
        batch = (batch - self._mean) / self._std
        if self.card.layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch, dtype=np.float32)

    def _run(self, blob: np.ndarray) -> np.ndarray:
        n = blob.shape[0]
        fixed = self._fixed_batch
        if fixed is not None and n != fixed:
            if n > fixed:
                return np.concatenate([self._run(blob[i : i + fixed]) for i in range(0, n, fixed)])
            pad = np.zeros((fixed - n, *blob.shape[1:]), np.float32)
            blob = np.concatenate([blob, pad])
        out = self.session.run([self._output], {self._input: blob})[0]
        out = np.asarray(out, np.float32).reshape(out.shape[0], -1)[:n]
        if out.shape[1] != self.dim:
            raise FacestreamError(
                f"{self.path}: model returned {out.shape[1]} values per face, the card says {self.dim}"
            )
        return out

    def embed(self, aligned: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """(n, dim) float32 unit vectors, one per aligned BGR crop; n may be 0."""
        if len(aligned) == 0:
            return np.zeros((0, self.dim), np.float32)
        step = max(1, int(batch_size))
        chunks = [self._run(self.preprocess(aligned[i : i + step])) for i in range(0, len(aligned), step)]
        vectors = np.concatenate(chunks)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)

    def embed_faces(self, image: np.ndarray, faces: Sequence[Face], batch_size: int = 32) -> np.ndarray:
        """Align every face of one image (face coordinates in that image) and embed them."""
        return self.embed([self.align(image, f) for f in faces], batch_size)
