"""bus.topology owns the pipeline's shape: every stage entry is real, port blocks never overlap,
and a config that would make two processes listen on one port is refused with both names."""

from __future__ import annotations

import importlib
import itertools
from typing import Any

import pytest

from bus.config import parse_config
from bus.errors import FacestreamError
from bus.topology import (
    HOPS,
    STAGES,
    START_ORDER,
    all_endpoints,
    bus_port,
    endpoint,
    metrics_port,
    ports_in_use,
    process_count,
)
from deploy.cli import build_parser


def _config(cameras: int = 1, **sections: Any) -> Any:
    data: dict[str, Any] = {
        "cameras": [{"id": f"cam{i}", "source": "x.mp4"} for i in range(cameras)],
        "match": {"gallery": "g.fsg"},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return parse_config(data)


def test_every_stage_entry_names_its_real_class() -> None:
    for name, spec in STAGES.items():
        module, cls = spec.target.split(":")
        stage = getattr(importlib.import_module(module), cls)
        assert stage.name == name


def test_metrics_blocks_and_hop_blocks_do_not_overlap() -> None:
    blocks = sorted((s.metrics_offset, s.metrics_offset + s.max_processes, s.name) for s in STAGES.values())
    for (_, end, a), (start, _, b) in itertools.pairwise(blocks):
        assert end <= start, f"metrics blocks of {a} and {b} overlap"
    hops = sorted(
        (h.port_offset, h.port_offset + (STAGES[h.owner].max_processes if h.per_process else 1), h.name)
        for h in HOPS.values()
    )
    for (_, end, a), (start, _, b) in itertools.pairwise(hops):
        assert end <= start, f"port blocks of {a} and {b} overlap"


def test_sources_start_last_and_the_cli_knows_every_stage() -> None:
    sources = [name for name in START_ORDER if STAGES[name].source]
    assert list(START_ORDER[-len(sources) :]) == sources == ["capture"]
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["stage", "nosuchstage", "--config", "c.yaml"])
    for name in STAGES:
        assert parser.parse_args(["stage", name, "--config", "c.yaml"]).name == name


def test_ports_follow_the_tables() -> None:
    config = _config(cameras=3, embed={"workers": 2}, metrics={"base_port": 9100})
    base = config.bus.base_port
    assert [e.bind for e in all_endpoints(config, "frames")] == [
        f"tcp://127.0.0.1:{base + i}" for i in range(3)
    ]
    assert endpoint(config.bus, "work", 2).connect == f"tcp://127.0.0.1:{base + 102}"
    assert bus_port(base, "embed_in", 1) == base + 201 and bus_port(base, "results", 7) == base + 301
    assert metrics_port(config, "overlay") == 9401 and metrics_port(config, "detect", 0) == 9200
    assert process_count(config, "capture") == 3 and process_count(config, "match") == 1
    ports = [p for p, _ in ports_in_use(config)]
    assert len(ports) == len(set(ports)) == 3 + 3 + 2 + 2 + (3 + 1 + 2 + 1 + 1)


def test_101_cameras_are_refused_100_are_not() -> None:
    assert len(_config(cameras=100).cameras) == 100
    with pytest.raises(FacestreamError, match="101 capture processes, at most 100"):
        _config(cameras=101)


@pytest.mark.parametrize(
    ("sections", "both"),
    [
        ({"metrics": {"base_port": 5650}}, ("bus work of capture 0", "metrics of capture 0")),
        ({"overlay": {"mjpeg_port": 5851}}, ("bus results", "overlay.mjpeg_port")),
        ({"overlay": {"mjpeg_port": 9200}, "metrics": {"base_port": 9100}}, ("metrics of detect 0", "mjpeg")),
    ],
)
def test_overlapping_ports_are_refused_naming_both(sections: dict[str, Any], both: tuple[str, str]) -> None:
    with pytest.raises(FacestreamError, match="wanted twice") as info:
        _config(**sections)
    assert all(part in str(info.value) for part in both), info.value


def test_ipc_transport_needs_only_metrics_ports(tmp_path: Any) -> None:
    config = _config(bus={"transport": "ipc", "ipc_dir": str(tmp_path)}, metrics={"base_port": 5550})
    assert {p for p, _ in ports_in_use(config)} == {5550, 5650, 5750, 5850, 5851}
