"""bench.compare's verdicts: a ratio the feeds could not show is a lower bound, not a miss."""

from __future__ import annotations

from typing import Any

from bench.compare import compare


def _report(pipe_fps: float, offered: float) -> dict[str, Any]:
    run = {"fps": pipe_fps, "offered_fps": offered, "results": 0}
    return {"naive": {"4": {"fps": 28.0}}, "pipeline": {"4": run}}


def test_an_input_bound_ratio_below_the_target_is_not_a_miss() -> None:
    target = compare(_report(120.0, 120.0))["targets"]["pipeline_vs_naive_4_feeds"]
    assert target["met"] is None and "--fps 60" in target["value"]


def test_a_machine_bound_ratio_is_judged() -> None:
    assert compare(_report(100.0, 240.0))["targets"]["pipeline_vs_naive_4_feeds"]["met"] is False
    assert compare(_report(230.0, 240.0))["targets"]["pipeline_vs_naive_4_feeds"]["met"] is True
