"""The truth test: what the viewer sees is right, with both cores busy.

A rendered video with several moving faces at once (50-200 px, two strangers, one face rolled 30
degrees, one person replaced by a stranger in the very same place and back), per-frame truth
boxes, `facestream run` on it in real time as a separate process tree, and two processes that
keep both cores busy. Every frame shown is scored (deploy.truth).
"""

from __future__ import annotations

from pathlib import Path

from bench.truth import prepare, run_once

BUSY = 2


def test_no_wrong_name_and_most_faces_named_with_both_cores_busy(tmp_path: Path) -> None:
    video, gallery = prepare(tmp_path)
    checked, summary = run_once(tmp_path, video, gallery, busy=BUSY)
    print(f"truth under load ({BUSY} busy processes): {checked.summary()}")
    assert checked.frames == 180 and summary["frames"] == 180
    assert checked.wrong == [], [str(w) for w in checked.wrong]  # no wrong name, no stranger named
    assert checked.strangers_named == 0 and checked.stranger_frames > 0
    # The figure itself is the bench's (python -m bench.truth); this guards against a collapse.
    assert checked.share >= 0.6, checked.summary()
    per_person = checked.per_person
    assert all(right > 0 for right, _ in per_person.values()), per_person  # the rolled face too
