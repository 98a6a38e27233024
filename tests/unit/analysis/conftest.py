"""Real photos laid out as person/*.jpg folders, the CLI parser with the analysis commands, and a
second real ONNX embedder (a pixel baseline) so that eval is checked on more than one model."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterable
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from bus.model_card import ModelCard
from deploy.cli import build_parser

PHOTOS = Path(__file__).resolve().parents[3] / "deploy" / "demo_assets" / "photos"
ALL_PEOPLE = ("ardern", "biden", "macron", "obama", "sunak")


def person_of(stem: str) -> str:
    return stem.rsplit("_", 1)[0]


def layout(root: Path, people: Iterable[str] = ALL_PEOPLE, lfw_names: bool = False) -> Path:
    """Copy the demo photos of `people` into root/person/*.jpg (LFW names: person_0001.jpg)."""
    wanted = set(people)
    photos = sorted(p for p in PHOTOS.glob("*.jpg") if person_of(p.stem) in wanted)
    assert {person_of(p.stem) for p in photos} == wanted, f"missing demo photos in {PHOTOS}"
    for photo in photos:
        person, number = person_of(photo.stem), int(photo.stem.rsplit("_", 1)[1])
        folder = root / person
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{person}_{number:04d}.jpg" if lfw_names else photo.name
        shutil.copyfile(photo, folder / name)
    return root


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def run_cli(argv: list[str]) -> int:
    """Call a command's handler in this process, as `facestream ARGV` would."""
    args = parse(argv)
    code: int = args.func(args)
    return code


PIXEL_CARD = ModelCard(
    model_id="pixels-8x8-baseline",
    input_width=112,
    input_height=112,
    embedding_dim=192,
    color_order="RGB",
    layout="NCHW",
    threshold=0.5,
    alignment="5point",
    source="facestream test baseline: 14x14 average-pooled aligned face pixels, mean removed",
)


def write_pixel_model(path: Path) -> Path:
    """A real (weak) ONNX embedder: the aligned face pooled to 8x8 RGB, minus its mean."""
    inp = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 112, 112])
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 192])
    nodes = [
        helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[14, 14], strides=[14, 14]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("ReduceMean", ["flat"], ["mu"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["flat", "mu"], ["embedding"]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "pixels", [inp], [out]), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    for key, value in PIXEL_CARD.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def pixel_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pixel_model(tmp_path_factory.mktemp("pixel-model") / "pixels.onnx")
