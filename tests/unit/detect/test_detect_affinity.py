"""Which cameras each detect worker takes frames from."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.config import parse_config
from detect.stage import DetectStage


def _ports(cameras: int, workers: int, affinity: bool = True) -> list[list[int]]:
    config = parse_config(
        {
            "cameras": [{"id": f"c{i}", "source": str(i)} for i in range(cameras)],
            "detect": {"workers": workers, "camera_affinity": affinity},
            "match": {"gallery": str(Path("g.fsg"))},
        }
    )
    base = config.bus.base_port + 100
    return [
        [int(ep.connect.rsplit(":", 1)[1]) - base for ep in DetectStage(config, w).my_cameras()]
        for w in range(workers)
    ]


@pytest.mark.parametrize(
    ("cameras", "workers", "expected"),
    [
        (4, 1, [[0, 1, 2, 3]]),
        (5, 2, [[0, 2, 4], [1, 3]]),
        (16, 8, [[i, i + 8] for i in range(8)]),
        (1, 3, [[0], [0], [0]]),
        (2, 4, [[0], [1], [0], [1]]),
    ],
)
def test_every_camera_has_a_worker_and_frames_stay_together(
    cameras: int, workers: int, expected: list[list[int]]
) -> None:
    assignment = _ports(cameras, workers)
    assert assignment == expected
    assert sorted({c for cams in assignment for c in cams}) == list(range(cameras))


def test_without_affinity_every_worker_takes_every_camera() -> None:
    assert _ports(3, 2, affinity=False) == [[0, 1, 2], [0, 1, 2]]
