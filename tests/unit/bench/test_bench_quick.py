"""`python -m bench.run --quick` end to end, as documented: real clip, real stage processes, FAISS
(about 16 s on 2 cores), and the face-like gallery it searches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.search import Shape, bench_size, make_gallery

REPO = Path(__file__).resolve().parents[3]


def _shape() -> Shape:
    """Three 'people' with two 'photos' each (similarity about 0.73), like the measured ones."""
    rng = np.random.default_rng(3)
    real = {}
    for i in range(3):
        first = rng.standard_normal(128).astype(np.float32)
        second = first + 0.61 * np.linalg.norm(first) * rng.standard_normal(128).astype(np.float32) / np.sqrt(
            128
        )
        real[f"p{i}_1"], real[f"p{i}_2"] = first / np.linalg.norm(first), second / np.linalg.norm(second)
    mean = np.ones(128, np.float32) / np.sqrt(128)
    return Shape(mean, float(np.sqrt(0.084 / 0.73)), 0.61, 0.084, 0.73, real)


def test_synthetic_gallery_has_the_measured_similarities() -> None:
    shape = _shape()
    rows, q = make_gallery(shape, 3000, 200, seed=1)
    assert rows.shape == (3000, 128) and q.vectors.shape == (200 + 50 + 3, 128)  # + strangers + real
    assert np.allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)
    assert (q.truth[200:250] == -1).all() and (q.truth[:200] >= 3).all()
    genuine = np.sum(q.vectors[:200] * rows[q.truth[:200]], axis=1)
    assert abs(float(genuine.mean()) - shape.genuine) < 0.03
    others = rows[np.random.default_rng(0).choice(np.arange(3, 3000), 400)] @ q.vectors[:200].T
    assert abs(float(np.mean(others)) - shape.impostor) < 0.03


def test_search_bench_exact_recall_and_match_defaults() -> None:
    entries = bench_size(_shape(), 2000, 40, hnsw_ef=(128,), ivf_nprobe=(4,), threads=1, threshold=0.363)
    flat = [e for e in entries if e["index"] == "flat"]
    assert len(flat) == 1 and flat[0]["recall_at_1"] == 1.0 and flat[0]["identified"] >= 0.95
    assert flat[0]["same_decision"] == 1.0 and flat[0]["strangers"] == 10
    assert {e["index"] for e in entries} == {"flat", "sketch", "ivf", "hnsw"}
    for kind in ("sketch", "ivf", "hnsw"):
        assert sum(e["match_default"] for e in entries if e["index"] == kind) == 1
    assert all(0.0 <= e["recall_at_1"] <= 1.0 and e["ms_per_query"] > 0 for e in entries)
    sketch = next(e for e in entries if e["index"] == "sketch" and e["match_default"])
    assert sketch["recall_at_1"] >= 0.95


def test_quick_bench_command(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--feeds", "1", "--workers", "2",
         "--gallery-sizes", "5000", "--scene-feeds", "1", "--skip", "many,events",
         "--window-s", "2", "--warmup-s", "0.5",
         "--out", str(out), "--workdir", str(tmp_path / "work")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "throughput and latency" in proc.stdout and "FAISS" in proc.stdout
    report = json.loads(out.read_text())
    naive, pipe = report["naive"]["1"], report["pipeline"]["1"]
    assert naive["fps"] > 0 and naive["names"].get("carphone_driver", 0) >= 0.8 * naive["frames"]
    assert pipe["results"] > 0 and pipe["workers"] == 2 and pipe["latency_ms"]["p50"] > 0
    assert pipe["names"].get("carphone_driver", 0) >= 0.8 * sum(pipe["names"].values())
    assert 0 < pipe["crops_per_result"] < 0.5  # tracking: most frames need no embedding
    assert pipe["cpu_s_total"] > 0 and set(pipe["cpu_s"]) == {
        "capture",
        "detect",
        "embed",
        "match",
        "overlay",
    }
    assert report["comparison"]["overhead"]["1"]["transport_overhead"] > -0.5
    assert {e["index"] for e in report["faiss"]} == {"flat", "sketch", "ivf", "hnsw"}
    # The detection budget's scenes: an empty room detects rarely, a moving face every so often.
    scenes = report["scenes"]
    assert scenes["empty"]["full_detections_per_frame"] < 0.2
    assert scenes["empty-1-detected"]["full_detections_per_frame"] > 0.5
    assert 0 < scenes["still_vs_detected"] < 1
    assert scenes["walking"]["boxes_agree"] > 0.5 and scenes["crowd6"]["frames"] > 0
    # A smaller gallery than the 1M of the FAISS target: not measured, never "MISSED".
    assert report["comparison"]["targets"]["match_5000"]["met"] is None
    assert "match_5000" in proc.stdout and "not measured here" in proc.stdout
