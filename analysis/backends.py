"""Load the detectors and embedding models an analysis asks for, by the names the CLI takes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bus.config import DetectConfig
from bus.errors import FacestreamError
from detect.base import Detector
from detect.factory import make_detector
from embed.model import EmbeddingModel

DETECTORS = ("yunet", "haar", "mtcnn")


def load_detector(name: str, mtcnn_dir: Path | None = None) -> Detector:
    if name not in DETECTORS:
        raise FacestreamError(f"unknown detector {name!r}: use {', '.join(DETECTORS)}")
    return make_detector(DetectConfig(backend=name, mtcnn_dir=mtcnn_dir))  # type: ignore[arg-type]


def parse_detector_list(text: str) -> list[str]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in DETECTORS]
    if bad or not names:
        raise FacestreamError(f"--detectors takes a comma list of {', '.join(DETECTORS)}, got {text!r}")
    return list(dict.fromkeys(names))


def load_models(specs: Sequence[str], cache_dir: Path | None = None) -> list[EmbeddingModel]:
    """Each distinct model once, in the order given ("sface" or an ONNX file with a model card)."""
    return [EmbeddingModel.load(spec, cache_dir=cache_dir) for spec in dict.fromkeys(specs)]
