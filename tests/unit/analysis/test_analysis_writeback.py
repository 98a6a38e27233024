"""Writing a threshold into a YAML config (only match.threshold changes) and into a gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from analysis.writeback import write_config_threshold, write_gallery_threshold
from bus.config import load_config
from bus.errors import FacestreamError
from match.gallery import Gallery

CONFIG = """\
# my cameras
cameras:
  - id: door   # front door
    source: rtsp://cam/door
match:
  gallery: people.fsg   # enrolled staff
{threshold}  # keep this comment
embed:
  model: sface
"""


def _config(tmp_path: Path, threshold_line: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(threshold=threshold_line))
    return path


@pytest.mark.parametrize("line", ["  threshold: 0.363   # from the model card", "  threshold: null", ""])
def test_text_edit_keeps_everything_else(tmp_path: Path, line: str) -> None:
    path = _config(tmp_path, line)
    before = yaml.safe_load(path.read_text())
    kept = write_config_threshold(path, 0.2318129)
    assert kept
    text = path.read_text()
    after = yaml.safe_load(text)
    assert after["match"].pop("threshold") == 0.2318129
    before["match"].pop("threshold", None)
    assert after == before
    for comment in ("# my cameras", "# front door", "# enrolled staff", "# keep this comment"):
        assert comment in text
    if "from the model card" in line:
        assert "threshold: 0.2318129   # from the model card" in text
    assert load_config(path).match.threshold == 0.2318129


def test_flow_style_is_rewritten_from_data(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("cameras: [{id: a, source: x.mp4}]\nmatch: {gallery: g.fsg, threshold: 0.4}\n")
    assert write_config_threshold(path, 0.5) is False
    assert yaml.safe_load(path.read_text()) == {
        "cameras": [{"id": "a", "source": "x.mp4"}],
        "match": {"gallery": "g.fsg", "threshold": 0.5},
    }


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(FacestreamError, match="cannot read config"):
        write_config_threshold(tmp_path / "none.yaml", 0.3)
    path = tmp_path / "c.yaml"
    path.write_text("cameras: [{id: a, source: x.mp4}]\n")
    with pytest.raises(FacestreamError, match="no 'match:' section"):
        write_config_threshold(path, 0.3)
    path = _config(tmp_path, "")
    original = path.read_text()
    with pytest.raises(FacestreamError, match=r"match\.threshold"):
        write_config_threshold(path, 1.5)  # the pipeline would refuse it
    assert path.read_text() == original


def test_gallery_threshold(tmp_path: Path) -> None:
    g = Gallery.create("sface-2021dec", 4, 0.363)
    g.add("ann", np.array([1.0, 0.0, 0.0, 0.0], np.float32))
    path = tmp_path / "g.fsg"
    g.save(path)
    write_gallery_threshold(path, 0.25, "sface-2021dec")
    loaded = Gallery.load(path)
    assert loaded.threshold == 0.25 and loaded.counts() == {"ann": 1}
    with pytest.raises(FacestreamError, match="built with model sface-2021dec"):
        write_gallery_threshold(path, 0.3, "other-model")
    assert Gallery.load(path).threshold == 0.25
