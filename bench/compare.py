"""What the raw numbers say: pipeline/naive ratios, transport overhead, and each target met or not.

Transport overhead = CPU the pipeline's processes spend per delivered result, divided by what
the same work costs in one process (decode every captured frame, detect and track every frame
detect handled, embed every crop, match every result), minus one. What is left is the price of
separate processes: serialising, copying, ZeroMQ, polling, Python glue, per-process overheads.
"""

from __future__ import annotations

from typing import Any


def _parts(naive: dict[str, Any], tracking: dict[str, Any]) -> dict[str, float]:
    cpu = naive["part_cpu_ms_per_frame"]
    return {
        "decode": float(cpu["decode"]),
        "detect": float(cpu["detect"]),
        "track": float(tracking.get("track_cpu_ms_per_frame", 0.0)),
        "embed_per_face": float(naive["embed_cpu_ms_per_face"]),
        "match": float(cpu["match"]),
    }


def overhead(run: dict[str, Any], parts: dict[str, float]) -> dict[str, Any]:
    results = run["results"]
    if not results or run.get("cpu_ms_per_result") is None:
        return {}
    detected = run.get("detected_frames") or results
    work_ms = (
        parts["decode"] * run["captured_frames"]
        + (parts["detect"] + (parts["track"] if run.get("track") else 0.0)) * detected
        + parts["embed_per_face"] * run["crops_per_result"] * results
        + parts["match"] * results
    )
    per_result = work_ms / results
    one_core_fps = 1000.0 / per_result if per_result > 0 else None
    return {
        "parts_cpu_ms_per_result": round(per_result, 3),
        "pipeline_cpu_ms_per_result": run["cpu_ms_per_result"],
        "transport_overhead": round(run["cpu_ms_per_result"] / per_result - 1.0, 3),
        "parts_fps_one_core": None if one_core_fps is None else round(one_core_fps, 2),
    }


def _best_search(entries: list[dict[str, Any]], size: int, ms: float, recall: float) -> dict[str, Any] | None:
    """The fastest index at `size` meeting the recall target (None if none does)."""
    ok = [e for e in entries if e["gallery"] == size and e["recall_at_1"] >= recall]
    return min(ok, key=lambda e: e["ms_per_query"]) if ok else None


def compare(report: dict[str, Any]) -> dict[str, Any]:
    from bench.run import TARGETS

    out: dict[str, Any] = {"ratio": {}, "overhead": {}, "targets": {}}
    naive, pipe = report.get("naive", {}), report.get("pipeline", {})
    tracking = report.get("tracking_cost", {})
    for feeds, run in pipe.items():
        if feeds in naive:
            out["ratio"][feeds] = round(run["fps"] / naive[feeds]["fps"], 2)
            out["ratio"][f"{feeds}_input_bound"] = run["fps"] >= 0.95 * run["offered_fps"]
        parts = report.get("parts") or naive.get("1")  # single-threaded parts when measured
        if parts:
            out["overhead"][feeds] = overhead(run, _parts(parts, tracking))
    targets = out["targets"]
    if "4" in out["ratio"]:
        value = out["ratio"]["4"]
        targets["pipeline_vs_naive_4_feeds"] = {
            "value": value,
            "target": ">= 3",
            "met": value >= TARGETS["pipeline_vs_naive_4_feeds"],
        }
    if out["overhead"]:
        worst = max((o["transport_overhead"] for o in out["overhead"].values() if o), default=None)
        if worst is not None:
            per = {f: o.get("transport_overhead") for f, o in out["overhead"].items()}
            targets["transport_overhead"] = {
                "value": per,
                "target": "<= 0.20",
                "met": worst <= TARGETS["transport_overhead"],
            }
    if "1" in pipe and pipe["1"].get("latency_ms"):
        p99 = pipe["1"]["latency_ms"]["p99"]
        targets["p99_latency_ms_1_feed"] = {
            "value": p99,
            "target": "< 150",
            "met": p99 < TARGETS["p99_latency_ms_1_feed"],
        }
    cost = report.get("events_cost")
    if cost and cost.get("cost") is not None:
        targets[f"events_cost_{cost['feeds']}_feeds"] = {
            "value": cost["cost"],
            "target": "<= 0.03",
            "met": cost["cost"] <= TARGETS["events_cost"],
        }
    entries = report.get("faiss", [])
    if entries:
        size = max(e["gallery"] for e in entries)
        best = _best_search(entries, size, TARGETS["match_ms_1m"], TARGETS["recall_at_1_1m"])
        flat = next(e for e in entries if e["gallery"] == size and e["index"] == "flat")
        targets[f"match_{size}"] = {
            "target": "< 5 ms with recall@1 >= 0.99"
            + ("" if size >= 1_000_000 else " (at 1M; this run's largest gallery is smaller)"),
            "flat_ms": flat["ms_per_query"],
            "best": best,
            "met": best is not None and best["ms_per_query"] < TARGETS["match_ms_1m"] and size >= 1_000_000,
        }
    return out
