"""bus.hosts with one address per process: cameras and embed workers on different hosts."""

from __future__ import annotations

import pytest

from bus.config import parse_config
from bus.errors import FacestreamError
from bus.topology import all_endpoints, endpoint

BASE = {"cameras": [{"id": "a", "source": "0"}, {"id": "b", "source": "1"}], "match": {"gallery": "g.fsg"}}


def test_one_address_per_camera_and_per_embed_worker() -> None:
    config = parse_config(
        {
            **BASE,
            "bus": {
                "hosts": {"capture": ["10.0.0.1", "10.0.0.2"], "embed": ["10.0.1.1", "10.0.1.2", "10.0.1.3"]}
            },
            "embed": {"workers": 3},
        }
    )
    assert [e.connect for e in all_endpoints(config, "frames")] == [
        "tcp://10.0.0.1:5550",
        "tcp://10.0.0.2:5551",
    ]
    assert [e.bind for e in all_endpoints(config, "work")] == ["tcp://10.0.0.1:5650", "tcp://10.0.0.2:5651"]
    assert [e.connect for e in all_endpoints(config, "embed_in")] == [
        "tcp://10.0.1.1:5750",
        "tcp://10.0.1.2:5751",
        "tcp://10.0.1.3:5752",
    ]
    assert endpoint(config.bus, "results").connect == "tcp://127.0.0.1:5851"  # not listed: bus.host


def test_a_single_address_still_serves_every_process() -> None:
    config = parse_config({**BASE, "bus": {"hosts": {"embed": "10.0.1.1"}}, "embed": {"workers": 2}})
    assert [e.connect for e in all_endpoints(config, "embed_in")] == [
        "tcp://10.0.1.1:5750",
        "tcp://10.0.1.1:5751",
    ]
    assert config.bus.host_of("embed", 1) == "10.0.1.1"


def test_a_list_of_the_wrong_length_is_a_clear_error() -> None:
    with pytest.raises(FacestreamError, match=r"bus.hosts.capture lists 1 address\(es\) for 2 capture"):
        parse_config({**BASE, "bus": {"hosts": {"capture": ["10.0.0.1"]}}})
    with pytest.raises(FacestreamError, match=r"bus.hosts.match lists 2"):
        parse_config({**BASE, "bus": {"hosts": {"match": ["10.0.0.1", "10.0.0.2"]}}})
    config = parse_config({**BASE, "bus": {"hosts": {"embed": ["10.0.1.1"]}}})
    with pytest.raises(FacestreamError, match="none for index 1"):
        config.bus.host_of("embed", 1)
