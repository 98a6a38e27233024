"""Recordings: a camera's segments in order; nothing else in the folder is ever served."""

from __future__ import annotations

from pathlib import Path

from bus.config import parse_config
from web.recordings import find, segments


def test_segments_in_order_and_nothing_else(tmp_path: Path) -> None:
    config = parse_config(
        {
            "cameras": [{"id": "a", "source": "x.mp4"}, {"id": "b", "source": "y.mp4"}],
            "match": {"gallery": "g.fsg"},
            "overlay": {"output": str(tmp_path / "out.mp4")},
        }
    )
    for name in (
        "out-a.mp4",
        "out-a.seg2.mp4",
        "out-a.seg10.mp4",
        "out-a.segX.mp4",
        "out-b.mp4",
        "notes.txt",
    ):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in segments(config, "a")] == ["out-a.mp4", "out-a.seg2.mp4", "out-a.seg10.mp4"]
    assert find(config, "a", "out-a.seg2.mp4") == tmp_path / "out-a.seg2.mp4"
    for other in ("out-b.mp4", "notes.txt", "../out-a.mp4", "out-a.segX.mp4"):
        assert find(config, "a", other) is None
    no_output = parse_config({"cameras": [{"id": "a", "source": "x"}], "match": {"gallery": "g"}})
    assert segments(no_output, "a") == []
