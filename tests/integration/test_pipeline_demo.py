"""The demo end to end: real photos, real clip, five kinds of stage process over real sockets."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from deploy.truth import load_results, load_truth, score
from tests.conftest import facestream


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_demo_names_known_people_and_calls_strangers_unknown(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = facestream(["demo", "--out", str(out)], timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "demo:" in proc.stdout and "frames/s" in proc.stdout
    assert "console" not in proc.stdout.lower()  # no console without --serve
    assert "frames with their own result" in proc.stdout

    results = _lines(out / "results.jsonl")
    carphone = [r for r in results if r["camera_id"] == "carphone" and r["seq"] >= 10 and r["faces"]]
    assert len(carphone) >= 60, f"only {len(carphone)} carphone frames with a face"
    named = sum(any(f["name"] == "carphone_driver" for f in r["faces"]) for r in carphone)
    assert named / len(carphone) >= 0.8, f"driver named in {named}/{len(carphone)} frames"

    # The photos clip, frame by frame against its truth: never a wrong name, strangers Unknown.
    checked = score(load_results(out / "results.jsonl", "photos"), load_truth(out / "photos_clip.truth.json"))
    assert checked.wrong == [], [str(w) for w in checked.wrong]
    assert checked.share >= 0.8, checked.summary()
    assert "truth check, photos clip: 0 wrong names" in proc.stdout
    shown = [r for r in results if r["camera_id"] == "photos" and r["faces"]]
    strangers = [f["name"] for r in shown if r["seq"] >= 45 for f in r["faces"]]
    assert strangers and set(strangers) <= {"Unknown", None}

    summary = json.loads((out / "results.summary.json").read_text())
    assert {"carphone_driver", "macron", "ardern", "obama"} <= set(summary["identities"])
    assert summary["unknown_faces"] > 0
    for video in ("overlay-carphone.mp4", "overlay-photos.mp4"):
        cap = cv2.VideoCapture(str(out / video))
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        assert frames >= 60, f"{video} has {frames} frames"
