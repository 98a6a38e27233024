"""`python -m trainer.speed`: real timings of real models on real faces (no TensorFlow needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bus.errors import FacestreamError
from tests.unit.analysis.conftest import write_pixel_model
from trainer.speed import embedder_speed, main


def test_speed_rows_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pixels = write_pixel_model(tmp_path / "pixels.onnx")
    assert main(["sface", str(pixels), "--seconds", "0.2", "--json"]) == 0
    sface, pix = json.loads(capsys.readouterr().out)
    assert (sface["model_id"], sface["dim"], sface["input_size"]) == ("sface-2021dec", 128, 112)
    assert (pix["model_id"], pix["dim"], pix["file_mb"]) == ("pixels-8x8-baseline", 192, 0.0)
    for row in (sface, pix):
        assert row["wall_ms_per_face"] > 0 and row["cpu_ms_per_face"] > 0
    # a 192-number average pool costs less than a CNN, whatever the machine
    assert pix["cpu_ms_per_face"] < sface["cpu_ms_per_face"]

    assert main(["sface", "--seconds", "0.1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| model | input | dim | file MB |") and lines[2].startswith(
        "| sface-2021dec | 112 |"
    )
    assert lines[2].endswith("| 1.0 |")
    with pytest.raises(FacestreamError, match="no faces"):
        embedder_speed("sface", [])
