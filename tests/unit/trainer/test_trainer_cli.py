"""The CLI's wiring: no TensorFlow at import, every subcommand parses, clear errors without the extra."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from bus.errors import FacestreamError
from trainer import cli
from trainer.tfenv import NEEDS_EXTRA


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="facestream")
    cli.register(p.add_subparsers(dest="command", required=True))
    return p


def test_importing_the_cli_does_not_import_tensorflow() -> None:
    code = (
        "import sys, trainer.cli, trainer.tfenv, trainer.evaluate, trainer.facedata, trainer.preprocess\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_subcommands_parse() -> None:
    p = parser()
    a = p.parse_args(["train", "digits", "--epochs", "2", "--unknown-digits", "7,9", "--mining", "semi_hard"])
    assert a.func is cli.cmd_train_digits and a.unknown_digits == (7, 9) and a.epochs == 2
    assert a.mining == "semi_hard" and a.out is None and a.dim == 64
    a = p.parse_args(
        ["train", "faces", "photos", "--arch", "openface", "--batch-size", "8", "--layout", "tsne"]
    )
    assert a.func is cli.cmd_train_faces and a.folder == Path("photos") and a.batch_size == 8
    a = p.parse_args(["export", "vggface", "--weights", "w.h5", "--layer", "fc7", "--out", "v.onnx"])
    assert a.func is cli.cmd_export and a.model == "vggface" and a.layer == "fc7"
    a = p.parse_args(["export", "senet50", "--weights", "rcmalli_vggface_tf_notop_senet50.h5"])
    assert a.func is cli.cmd_export and a.model == "senet50" and a.out is None
    for model in ("openface", "resnet50", "mtcnn", "checkpoint"):
        assert p.parse_args(["export", model]).model == model
    with pytest.raises(SystemExit):
        p.parse_args(["train", "digits", "--unknown-digits", "10"])
    with pytest.raises(SystemExit):
        p.parse_args(["train", "digits", "--mining", "random"])


def test_export_needs_weights_and_run_dir() -> None:
    p = parser()
    with pytest.raises(FacestreamError, match="needs --weights"):
        cli.cmd_export(p.parse_args(["export", "vggface"]))
    with pytest.raises(FacestreamError, match="export resnet50 needs --weights"):
        cli.cmd_export(p.parse_args(["export", "resnet50"]))
    with pytest.raises(FacestreamError, match="needs --run"):
        cli.cmd_export(p.parse_args(["export", "checkpoint"]))


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "digits", "--epochs", "1"],
        ["train", "faces", "somewhere"],
        ["export", "mtcnn", "--out", "x"],
        ["export", "openface", "--weights", "."],  # weights are checked first: these exist
        ["export", "senet50", "--weights", __file__],
    ],
)
def test_without_tensorflow_the_handlers_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.setitem(
        sys.modules, "tensorflow", None
    )  # makes `import tensorflow` fail, as when not installed
    args = parser().parse_args(argv)
    with pytest.raises(FacestreamError) as err:
        args.func(args)
    assert str(err.value) == NEEDS_EXTRA
