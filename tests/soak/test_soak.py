"""The soak run as a test (marked slow: not in CI's default run).

SOAK_MINUTES=30 pytest -m slow tests/soak -s
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.soak.run import run_soak

MAX_GROWTH_MIB = 30.0  # all stages together, from the end of the warm-up to the end
MAX_SLOPE_MIB_PER_MIN = 0.5  # per stage, after the warm-up
MAX_LOST_FRACTION = 0.10  # drop-oldest sheds frames on a busy host; far more means a stall


@pytest.mark.slow
@pytest.mark.timeout(0)
def test_soak_memory_stays_flat_and_frames_flow(tmp_path: Path) -> None:
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    report = run_soak(minutes, tmp_path)
    print(json.dumps(report, indent=2))
    assert report["exit_code"] == 0 and report["stage_restarts"] == 0 and report["same_pids_at_end"]
    assert report["memory_total"]["growth_mib"] < MAX_GROWTH_MIB, report["memory_total"]
    if minutes >= 10:  # a slope over a few minutes is mostly start-up noise
        for label, mem in report["memory"].items():
            assert mem["slope_mib_per_min"] < MAX_SLOPE_MIB_PER_MIN, (label, mem)
    frames = report["frames"]
    assert (
        frames["captured_in_window"] > (minutes * 60 - report["warmup_s"]) * 20
    )  # the clip plays at ~30 fps
    assert frames["lost_fraction"] < MAX_LOST_FRACTION, frames
    assert all(n == 0 for n in frames["malformed"].values()), frames["malformed"]
    assert frames["overlay_segments"] >= int(minutes) - 1  # one MP4 a minute of video: rolled over
