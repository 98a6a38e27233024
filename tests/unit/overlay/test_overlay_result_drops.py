"""The overlay counts results lost on the PUB hop from match (gaps in `published`), per camera."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bus.records import EndOfStream, MatchResult
from overlay.stage import OverlayStage
from tests.stage_thread import StageThread
from tests.unit.overlay.stage_io import Upstream, overlay_config


def _drops(stage: OverlayStage, camera: str) -> float:
    labels = {"stage": "overlay", "worker": "0", "camera": camera, "hop": "match->overlay"}
    return stage.metrics.registry.get_sample_value("facestream_drops_total", labels) or 0.0


def test_gaps_in_published_numbers_are_counted(tmp_path: Path) -> None:
    config = overlay_config(tmp_path, ["cam0", "cam1"], hold_s=0.05, idle_exit_s=0.3)
    stage = OverlayStage(config)
    upstream = Upstream(config)
    runner = StageThread(stage).start()
    image = np.full((48, 64, 3), 90, np.uint8)
    # cam0: match published 1..12, results 4, 5 and 9 never arrived; then match restarted (1, 2).
    plan = {"cam0": [1, 2, 3, 6, 7, 8, 10, 11, 12, 1, 2], "cam1": list(range(1, 12))}
    try:
        upstream.wait_subscribed()
        for seq in range(11):
            for i, cam in enumerate(("cam0", "cam1")):
                ts = time.time_ns()
                upstream.frame(i, cam, seq, image, ts)
                result = MatchResult(cam, seq, ts, frame_size=(64, 48), published=plan[cam][seq])
                upstream.results.send_multipart(result.to_frames())
        for i, cam in enumerate(("cam0", "cam1")):
            upstream.frames[i].send_multipart(EndOfStream(cam, 10, time.time_ns()).to_frames())
        runner.join(20)
    finally:
        upstream.close()
    assert _drops(stage, "cam0") == 3
    assert _drops(stage, "cam1") == 0
