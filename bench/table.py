"""The short human-readable table printed after a bench run (the JSON holds everything)."""

from __future__ import annotations

from typing import Any


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return [_row(head, widths), _row(["-" * w for w in widths], widths), *(_row(r, widths) for r in rows)]


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; load at start {m['load_avg_at_start']}",
        f"settings: {report['settings']}",
        "",
    ]
    naive, pipe = report.get("naive", {}), report.get("pipeline", {})
    comp = report.get("comparison", {})
    if naive or pipe:
        rows = []
        for feeds in sorted(set(naive) | set(pipe), key=int):
            n, p = naive.get(feeds, {}), pipe.get(feeds, {})
            lat = p.get("latency_ms") or {}
            over = comp.get("overhead", {}).get(feeds, {})
            rows.append(
                [
                    feeds,
                    _f(n.get("fps")),
                    _f(p.get("fps")),
                    _f(p.get("offered_fps")),
                    _f(comp.get("ratio", {}).get(feeds), 2),
                    _f(lat.get("p50")),
                    _f(lat.get("p99")),
                    _f(p.get("crops_per_result"), 3),
                    _f(over.get("transport_overhead"), 3),
                    _f(sum(p.get("drops", {}).values()) if p else None),
                ]
            )
        head = [
            "feeds",
            "naive fps",
            "pipe fps",
            "offered",
            "ratio",
            "p50 ms",
            "p99 ms",
            "crops/frame",
            "overhead",
            "drops",
        ]
        lines += ["throughput and latency (capture -> name at a results client)", *_table(head, rows), ""]
    n = report.get("parts") or naive.get("1")
    if n:
        parts = n["part_cpu_ms_per_frame"]
        track = report.get("tracking_cost", {}).get("track_cpu_ms_per_frame")
        threads = "1 OpenCV thread" if report.get("parts") else "OpenCV's default threads"
        lines.append(
            f"own compute, one process, {threads}, CPU ms: "
            f"decode {parts['decode']:.2f}/frame, detect {parts['detect']:.2f}/frame, track {_f(track, 2)}/frame, "
            f"embed {n['embed_cpu_ms_per_face']:.2f}/face, match {parts['match']:.3f}/frame"
        )
    for feeds, p in sorted(pipe.items(), key=lambda kv: int(kv[0])):
        st = p["stage_ms_per_message"]
        lines.append(
            f"in the pipeline ({feeds} feed(s)), ms per message: detect {_f(st['detect'], 2)}, embed {_f(st['embed'], 2)}, "
            f"match {_f(st['match'], 3)}, capture send {_f(st['capture'], 2)}; CPU s {p['cpu_s']}; drops {p['drops']}"
        )
    if naive or pipe:
        lines.append("")
    scenes = {k: v for k, v in report.get("scenes", {}).items() if isinstance(v, dict)}
    many = report.get("many")
    if scenes or many:
        rows = []
        runs = [(f"{k} x{v['feeds']}", v) for k, v in scenes.items()]
        if many:
            runs += [(f"16 mixed x{many['feeds']}", many)]
        for label, v in runs:
            rows.append(
                [
                    label,
                    _f(v.get("fps")),
                    _f(v.get("offered_fps")),
                    _f(min(v.get("camera_fps", {}).values(), default=None)),
                    _f(v.get("cpu_ms_per_frame"), 2),
                    _f(v.get("full_detections_per_frame"), 3),
                    _f(v.get("boxes_agree"), 3),
                    _f((v.get("latency_ms") or {}).get("p50")),
                ]
            )
        head = [
            "scene",
            "fps",
            "offered",
            "slowest cam",
            "CPU ms/frame",
            "detections/frame",
            "boxes agree",
            "p50 ms",
        ]
        lines += [
            "detection budget: scenes (boxes agree: IoU >= 0.5 with a detection on that frame)",
            *_table(head, rows),
        ]
        if "still_vs_detected" in report.get("scenes", {}):
            lines.append(
                f"a still scene costs {report['scenes']['still_vs_detected']:.3f} of one detected every frame"
            )
        lines.append("")
    cost = report.get("events_cost")
    if cost:
        lines += [
            f"events stage ({cost['feeds']} feeds, {cost['order']}): {cost['fps_without']} fps without, "
            f"{cost['fps_with']} with; cost {_f(cost['cost'], 4)}, events' share of the CPU "
            f"{_f(cost['events_cpu_share'], 4)}",
            "",
        ]
    entries = report.get("faiss", [])
    if entries:
        rows = []
        for e in entries:
            params = ", ".join(
                f"{k}={e[k]}" for k in ("nlist", "nprobe", "M", "ef_search", "refine") if e.get(k) is not None
            )
            if e.get("match_default"):
                params += " (match default)"
            rows.append(
                [
                    str(e["gallery"]),
                    e["index"],
                    params,
                    _f(e["build_s"], 1),
                    _f(e["ms_per_query"], 3),
                    _f(e["recall_at_1"], 3),
                    _f(e["identified"], 3),
                    _f(e.get("same_decision"), 3),
                ]
            )
        head = [
            "gallery",
            "index",
            "settings",
            "build s",
            "ms/query",
            "recall@1",
            "identified",
            "same answer",
        ]
        lines += ["FAISS 1:K, one query at a time", *_table(head, rows), ""]
    targets = comp.get("targets", {})
    if targets:
        lines.append("targets")
        for name, t in targets.items():
            shown = t.get("value", t.get("best"))
            if isinstance(shown, dict) and "index" in shown:
                knob = shown.get("ef_search") or shown.get("nprobe") or shown.get("refine") or ""
                shown = f"{shown['index']} {knob} at {shown['gallery']}: {shown['ms_per_query']} ms, recall {shown['recall_at_1']}"
            verdict = {True: "MET", False: "MISSED", None: "not measured here"}[t["met"]]
            lines.append(f"  {name}: {shown} (target {t['target']}): {verdict}")
    lines.append(f"total {report.get('total_s')} s")
    return "\n".join(lines)
