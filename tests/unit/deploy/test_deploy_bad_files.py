"""Bad files given to the CLI (corrupt images, corrupt or foreign ONNX models, unreadable videos):
one `facestream: error:` line, exit code 2, no traceback, for every command that takes them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from deploy.assets import carphone_video
from tests.conftest import facestream


def _one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("facestream: error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert needle in lines[0], lines[0]


def _corrupt_images(photos: Path, folder: Path) -> dict[str, Path]:
    real = (photos / "macron_1.jpg").read_bytes()
    png_header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    files = {
        "empty": b"",
        "truncated": real[: len(real) // 5],
        "header_only": real[:300],
        "text": b"this is not an image\n" * 20,
        "broken_png": png_header + os.urandom(2000),
    }
    out = {}
    for name, data in files.items():
        path = folder / f"{name}.{'png' if 'png' in name else 'jpg'}"
        path.write_bytes(data)
        out[name] = path
    return out


def test_corrupt_images(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "g.fsg"
    assert facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    before = gallery.read_bytes()
    for _name, bad in _corrupt_images(photos, tmp_path).items():
        _one_line_error(facestream(["verify", str(bad), str(photos / "macron_2.jpg")]), "cannot read image")
        _one_line_error(facestream(["identify", str(gallery), str(bad)]), "cannot read image")
        _one_line_error(facestream(["enroll", str(gallery), str(bad), "-q"]), "cannot read image")
    assert gallery.read_bytes() == before


def _bad_models(folder: Path) -> dict[str, Path]:
    from embed.model import EmbeddingModel

    real = EmbeddingModel.load("sface").path.read_bytes()
    (folder / "garbage.onnx").write_bytes(os.urandom(4096))
    (folder / "truncated.onnx").write_bytes(real[: len(real) // 2])
    (folder / "empty.onnx").write_bytes(b"")
    # A valid ONNX graph that is no embedding model: no facestream model card in its metadata.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 112, 112])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 112, 112])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "plain", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "plain.onnx")
    return {p.stem: p for p in folder.glob("*.onnx")}


def test_corrupt_or_foreign_onnx_models(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "g.fsg"
    assert facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    for name, model in _bad_models(tmp_path).items():
        needle = "model card" if name == "plain" else "is not a usable ONNX model"
        proc = facestream(
            ["verify", str(photos / "macron_1.jpg"), str(photos / "macron_2.jpg"), "--model", str(model)]
        )
        if name == "plain":
            assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
            lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("facestream: error:")]
            assert len(lines) == 1 and str(model) in lines[0], proc.stderr[-2000:]
        else:
            _one_line_error(proc, needle)
        config = tmp_path / f"run-{name}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "cameras": [{"id": "c", "source": str(carphone_video())}],
                    "bus": {"transport": "ipc", "ipc_dir": str(tmp_path / "ipc")},
                    "embed": {"model": str(model)},
                    "match": {"gallery": str(gallery)},
                }
            )
        )
        run = facestream(["run", str(config)])
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr[-2000:]
        lines = [ln for ln in run.stderr.splitlines() if ln.startswith("facestream: error:")]
        assert len(lines) == 1 and str(model) in lines[0], run.stderr[-2000:]


@pytest.mark.parametrize("kind", ["garbage", "empty", "truncated"])
def test_unreadable_video_at_run(tmp_path: Path, photos: Path, kind: str) -> None:
    gallery = tmp_path / "g.fsg"
    assert facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    video = tmp_path / "clip.mp4"
    real = carphone_video().read_bytes()
    video.write_bytes(
        {"garbage": os.urandom(50_000), "empty": b"", "truncated": real[: len(real) // 3]}[kind]
    )
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "cameras": [{"id": "c", "source": str(video)}],
                "bus": {"transport": "ipc", "ipc_dir": str(tmp_path / "ipc")},
                "match": {"gallery": str(gallery)},
            }
        )
    )
    _one_line_error(facestream(["run", str(config)]), f"cannot read video {video}")
