"""The speed and quality targets the benchmark checks (bench.compare says whether each was met)."""

from __future__ import annotations

TARGETS = {
    "pipeline_vs_naive_4_feeds": 6.0,  # at least
    "driver_named": 0.95,  # share of 4-feed results naming the carphone driver, at least
    "transport_overhead": 0.15,  # at most
    "p99_latency_ms_1_feed": 150.0,  # below
    "still_vs_detected": 0.10,  # CPU per frame of a still scene over one detected every frame, at most
    "boxes_agree": 0.95,  # share of frames whose boxes agree with a detection on that frame, at least
    "match_ms_1m": 5.0,  # below
    "recall_at_1_1m": 0.99,  # at least
    "events_cost": 0.03,  # at most: throughput the events stage may take from the pipeline
}
