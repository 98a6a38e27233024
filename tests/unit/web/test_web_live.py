"""The live state from results: rate, age, faces on screen, results missed, ended cameras."""

from __future__ import annotations

from bus.records import EndOfStream, Face, MatchResult
from web.live import STALE_S, LiveState


def test_rate_age_faces_and_gaps() -> None:
    live = LiveState(["cam0", "cam1"])
    assert live.cameras(now=0.0)["cam0"]["status"] == "waiting"
    for i in range(11):
        faces = [Face((1, 2, 3, 4), 0.9, name="alice", similarity=0.5)]
        live.observe(
            MatchResult("cam0", i, 0, faces=faces, published=i + 1 + (3 if i == 10 else 0)), now=i * 0.1
        )
    cam = live.cameras(now=1.0)["cam0"]
    assert cam["status"] == "live" and abs(cam["fps"] - 10.0) < 0.01 and cam["last_seq"] == 10
    assert cam["faces"][0]["name"] == "alice" and cam["missed_results"] == 3
    assert live.cameras(now=1.0 + STALE_S + 1)["cam0"]["status"] == "stalled"
    assert live.cameras(now=1.0 + STALE_S + 1)["cam0"]["faces"] == []
    live.observe(EndOfStream("cam1", 5, 0, reason="end of file"))
    assert live.cameras()["cam1"]["status"] == "ended"
    live.observe(MatchResult("other", 0, 0))  # not a configured camera: ignored
    assert set(live.cameras()) == {"cam0", "cam1"}
