"""What the events stage costs the pipeline: the same run with and without it, in one bench run.

Runs alternate without, with, with, without (ABBA), so a drift of the machine's load over the
run weighs on both sides alike. Cost = 1 - fps with events / fps without; the events process's
share of the pipeline's CPU time is reported beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.pipeline import looping, run_pipeline

ORDER = (False, True, True, False)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def events_cost(
    clip: Path, gallery: Path, feeds: int, settings: dict[str, Any], workdir: Path, rounds: int = 1
) -> dict[str, Any]:
    runs = []
    for i, with_events in enumerate(ORDER * rounds):
        result = run_pipeline(
            looping(clip, feeds, settings["fps_per_feed"]),
            gallery,
            settings["workers"],
            settings["warmup_s"],
            settings["window_s"],
            workdir,
            f"events-{i}-{'with' if with_events else 'without'}",
            settings["hwm"],
            events=with_events,
        )
        runs.append(
            {
                "events": with_events,
                "fps": result["fps"],
                "results": result["results"],
                "cpu_s_total": result["cpu_s_total"],
                "cpu_s_events": result["cpu_s"].get("events", 0.0),
                "drops": sum(result["drops"].values()),
            }
        )
    without = _mean([r["fps"] for r in runs if not r["events"]])
    with_stage = _mean([r["fps"] for r in runs if r["events"]])
    cpu_total = sum(r["cpu_s_total"] for r in runs if r["events"])
    cpu_events = sum(r["cpu_s_events"] for r in runs if r["events"])
    return {
        "feeds": feeds,
        "order": "ABBA (A: without events, B: with)",
        "runs": runs,
        "fps_without": round(without, 2),
        "fps_with": round(with_stage, 2),
        "cost": round(1.0 - with_stage / without, 4) if without else None,
        "events_cpu_share": round(cpu_events / cpu_total, 4) if cpu_total else None,
    }
