from __future__ import annotations

from pathlib import Path

import pytest

from bus.config import load_config, parse_config
from bus.errors import FacestreamError
from bus.topology import all_endpoints, endpoint

BASE = {"cameras": [{"id": "cam0", "source": "a.mp4"}], "match": {"gallery": "g.fsg"}}


def test_defaults_and_tcp_endpoints() -> None:
    config = parse_config({**BASE, "cameras": [{"id": "a", "source": "0"}, {"id": "b", "source": "1"}]})
    assert config.bus.transport == "tcp"
    assert endpoint(config.bus, "frames", 1).connect == "tcp://127.0.0.1:5551"
    assert endpoint(config.bus, "results").bind == "tcp://127.0.0.1:5851"
    assert [e.connect for e in all_endpoints(config, "work")] == [
        "tcp://127.0.0.1:5650",
        "tcp://127.0.0.1:5651",
    ]


def test_per_stage_hosts_and_bind_any() -> None:
    config = parse_config({**BASE, "bus": {"hosts": {"match": "10.1.0.3"}, "bind_any": True}})
    ep = endpoint(config.bus, "match_in")
    assert ep.connect == "tcp://10.1.0.3:5850" and ep.bind == "tcp://0.0.0.0:5850"


def test_ipc_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(FacestreamError, match="ipc_dir"):
        parse_config({**BASE, "bus": {"transport": "ipc"}})
    config = parse_config({**BASE, "bus": {"transport": "ipc", "ipc_dir": str(tmp_path)}})
    assert endpoint(config.bus, "embed_in", 2).bind == f"ipc://{tmp_path}/embed_in-2"


def test_unknown_keys_and_duplicates_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FacestreamError, match=r"detect\.backnd"):
        parse_config({**BASE, "detect": {"backnd": "haar"}})
    with pytest.raises(FacestreamError, match="repeated: a"):
        parse_config({**BASE, "cameras": [{"id": "a", "source": "0"}, {"id": "a", "source": "1"}]})
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras: [\n")
    with pytest.raises(FacestreamError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(FacestreamError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_the_annotated_example_config_is_valid() -> None:
    """README points users at examples/pipeline.yaml: every key in it must still exist."""
    from tests.conftest import REPO

    config = load_config(REPO / "examples" / "pipeline.yaml")
    assert [c.id for c in config.cameras] == ["door", "lobby", "recording"]
    assert config.bus.heartbeat_s == 1.0 and config.bus.peer_timeout_s == 3.0
    assert config.overlay.segment_s == 600.0


@pytest.mark.parametrize("value", [0, -0.5])
def test_a_threshold_that_would_name_strangers_is_refused(value: float) -> None:
    data = {"cameras": [{"id": "a", "source": "a.mp4"}], "match": {"gallery": "g.fsg", "threshold": value}}
    with pytest.raises(FacestreamError, match=r"match\.threshold"):
        parse_config(data)
