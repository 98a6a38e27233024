"""The events and web sections: a web section brings events, needs the live view, checks URLs."""

from __future__ import annotations

import pytest

from bus.config import is_loopback, parse_config
from bus.errors import FacestreamError

BASE = {"cameras": [{"id": "cam0", "source": "a.mp4"}], "match": {"gallery": "g.fsg"}}


def test_web_turns_events_on_and_needs_a_fixed_mjpeg_port() -> None:
    config = parse_config({**BASE, "web": {}, "overlay": {"mjpeg_port": 8080}})
    assert config.events is not None and config.web is not None and config.web.host == "127.0.0.1"
    assert parse_config(BASE).events is None
    for port in (None, 0):
        with pytest.raises(FacestreamError, match="mjpeg_port"):
            parse_config({**BASE, "web": {}, "overlay": {"mjpeg_port": port}})


def test_database_url_and_tokens_are_checked() -> None:
    with pytest.raises(FacestreamError, match="database_url"):
        parse_config({**BASE, "events": {"database_url": "mysql://x"}})
    ok = parse_config({**BASE, "events": {"database_url": "postgresql://u@127.0.0.1:5432/db"}})
    assert ok.events is not None and ok.events.database_url is not None
    with pytest.raises(FacestreamError, match=r"web\.token"):
        parse_config({**BASE, "web": {"token": "short"}, "overlay": {"mjpeg_port": 8080}})


def test_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback("example.org")
