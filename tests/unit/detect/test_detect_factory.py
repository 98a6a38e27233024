from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bus.config import DetectConfig
from bus.errors import FacestreamError
from detect.factory import make_detector
from detect.haar import HaarDetector
from detect.yunet import YuNetDetector


def test_yunet_and_haar(photos: dict[str, np.ndarray]) -> None:
    yunet = make_detector(DetectConfig(backend="yunet", min_face=20))
    haar = make_detector(DetectConfig(backend="haar", min_face=20))
    assert isinstance(yunet, YuNetDetector) and yunet.name == "yunet" and yunet.cfg.min_face == 20
    assert isinstance(haar, HaarDetector) and haar.name == "haar" and haar.cfg.min_face == 20
    for detector in (yunet, haar):
        assert len(detector.detect(photos["sunak_1"])) == 1


def test_mtcnn_needs_its_folder(tmp_path: Path) -> None:
    assert make_detector(DetectConfig(backend="mtcnn")).name == "mtcnn"  # the bundled export
    with pytest.raises(FacestreamError, match="not a folder"):
        make_detector(DetectConfig(backend="mtcnn", mtcnn_dir=tmp_path / "missing"))
    with pytest.raises(FacestreamError, match=r"no \.onnx files"):
        make_detector(DetectConfig(backend="mtcnn", mtcnn_dir=tmp_path))


def test_mtcnn_module_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pnet.onnx").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "detect.mtcnn", None)  # makes `import detect.mtcnn` fail
    with pytest.raises(FacestreamError, match=r"MTCNN detector cannot be loaded .*detect\.mtcnn"):
        make_detector(DetectConfig(backend="mtcnn", mtcnn_dir=tmp_path))
