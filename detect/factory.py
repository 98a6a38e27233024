"""Pick the detector named in the config; MTCNN is imported only when asked for."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import cast

from bus.config import DetectConfig
from bus.errors import FacestreamError
from detect.base import Detector
from detect.haar import HaarDetector
from detect.yunet import YuNetDetector


def make_detector(cfg: DetectConfig) -> Detector:
    if cfg.backend == "yunet":
        return YuNetDetector(cfg)
    if cfg.backend == "haar":
        return HaarDetector(cfg)
    if cfg.backend == "mtcnn":
        return _mtcnn(cfg)
    raise FacestreamError(f"unknown detect.backend {cfg.backend!r}: use yunet, haar or mtcnn")


def _mtcnn(cfg: DetectConfig) -> Detector:
    folder = cfg.mtcnn_dir
    hint = "export the P/R/O-Net ONNX files with the trainer's MTCNN export and set detect.mtcnn_dir"
    if folder is None:  # the bundled export (detect/models/mtcnn)
        folder = Path(__file__).parent / "models" / "mtcnn"
    if not folder.is_dir():
        raise FacestreamError(f"detect.mtcnn_dir {folder} is not a folder: {hint}")
    if not any(folder.glob("*.onnx")):
        raise FacestreamError(f"detect.mtcnn_dir {folder} holds no .onnx files: {hint}")
    try:
        module = importlib.import_module("detect.mtcnn")
    except ImportError as exc:
        missing = exc.name or "detect.mtcnn"
        raise FacestreamError(
            f"the MTCNN detector cannot be loaded (missing module {missing}); "
            "use detect.backend: yunet or install facestream with MTCNN support"
        ) from exc
    return cast(Detector, module.MtcnnDetector(cfg))
