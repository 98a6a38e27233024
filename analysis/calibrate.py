"""`facestream calibrate`: genuine/impostor scores of labelled photos -> ROC, EER, threshold at a FAR."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from analysis.backends import load_detector, load_models
from analysis.dataset import labelled_photos
from analysis.embedding import embed_photos, require_faces
from analysis.metrics import (
    Eer,
    OperatingPoint,
    Roc,
    equal_error_rate,
    far_frr_at,
    far_frr_table,
    pair_scores,
    roc_curve,
    threshold_at_far,
)
from analysis.plots import plot_roc, plot_scores
from analysis.report import out_dir, write_report
from bus.errors import FacestreamError


@dataclass
class Calibration:
    model_id: str
    detector: str
    images: int
    faces: int
    people: int
    skipped: list[tuple[Path, str]]
    genuine: np.ndarray
    impostor: np.ndarray
    roc: Roc
    eer: Eer
    target_far: float
    chosen: OperatingPoint  # the threshold for target_far and its measured FAR/FRR
    model_threshold: float
    table: list[OperatingPoint]
    files: dict[str, Path] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "calibrate",
            "model_id": self.model_id,
            "detector": self.detector,
            "images": self.images,
            "faces": self.faces,
            "people": self.people,
            "skipped": [[str(p), r] for p, r in self.skipped],
            "genuine_pairs": len(self.genuine),
            "impostor_pairs": len(self.impostor),
            "genuine_mean": float(self.genuine.mean()),
            "impostor_mean": float(self.impostor.mean()),
            "genuine_min": float(self.genuine.min()),
            "impostor_max": float(self.impostor.max()),
            "eer": self.eer.rate,
            "eer_threshold": self.eer.threshold,
            "target_far": self.target_far,
            "threshold": self.chosen.threshold,
            "far_at_threshold": self.chosen.far,
            "frr_at_threshold": self.chosen.frr,
            "model_threshold": self.model_threshold,
            "min_measurable_far": 1.0 / len(self.impostor),
            "table": [vars(row) for row in self.table],
            "files": {k: str(v) for k, v in self.files.items()},
        }


def calibrate(
    folder: Path,
    out: Path,
    model: str = "sface",
    detector: str = "yunet",
    mtcnn_dir: Path | None = None,
    target_far: float = 1e-3,
    progress: bool = True,
) -> Calibration:
    if not 0.0 < target_far < 1.0:
        raise FacestreamError(f"--target-far must be between 0 and 1 (e.g. 0.001), got {target_far}")
    photos = labelled_photos(folder, exclude=out)
    people = sorted({p.label for p in photos if p.label})
    if len(people) < 2:
        raise FacestreamError(
            f"calibration needs photos of at least 2 people (impostor pairs), {folder} has {len(people)}: "
            f"{', '.join(people)}"
        )
    out = out_dir(out)
    det = load_detector(detector, mtcnn_dir)
    (emb,) = load_models([model])
    run = embed_photos(photos, det, [emb], progress=progress, desc="calibrate: embedding")
    require_faces(run, folder)
    found = sorted(set(run.labels))
    if len(found) < 2:
        raise FacestreamError(
            f"faces were found for only one person ({found[0]}); calibration needs 2 or more"
        )
    genuine, impostor = pair_scores(
        run.vectors[0],
        run.labels,
        progress=lambda rows: tqdm(rows, desc="calibrate: pairs", unit="row", disable=not progress),
    )
    if len(genuine) == 0:
        raise FacestreamError(
            f"no genuine pairs in {folder}: at least one person needs 2 or more photos with a face found"
        )
    roc = roc_curve(genuine, impostor)
    eer = equal_error_rate(roc)
    threshold = min(1.0, threshold_at_far(impostor, target_far))
    far, frr = far_frr_at(genuine, impostor, threshold)
    chosen = OperatingPoint(f"FAR<={target_far:g}", threshold, far, frr)
    model_threshold = float(emb.card.threshold)
    table = far_frr_table(genuine, impostor, extra=[("model", model_threshold), ("EER", eer.threshold)])
    result = Calibration(
        model_id=emb.model_id,
        detector=det.name,
        images=run.images,
        faces=len(run.items),
        people=len(found),
        skipped=run.skipped,
        genuine=genuine,
        impostor=impostor,
        roc=roc,
        eer=eer,
        target_far=target_far,
        chosen=chosen,
        model_threshold=model_threshold,
        table=table,
    )
    title = f"{emb.model_id} on {folder.name}: {len(genuine)} genuine / {len(impostor)} impostor pairs"
    result.files["roc"] = plot_roc(roc, eer, chosen, len(impostor), out / "roc.png", title)
    marks = [("EER", eer.threshold), (chosen.label, threshold), ("model", model_threshold)]
    result.files["scores"] = plot_scores(genuine, impostor, roc, marks, out / "scores.png", title)
    result.files["curve"] = _write_curve(roc, out / "far_frr.csv")
    run.save(out / "embeddings.npz")
    result.files["embeddings"] = out / "embeddings.npz"
    result.files["report"] = out / "report.json"
    write_report(out / "report.json", result.to_json())
    return result


def _write_curve(roc: Roc, path: Path) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["threshold", "far", "frr"])
        for t, far, frr in zip(roc.thresholds, roc.far, roc.frr, strict=True):
            writer.writerow([f"{t:.6f}", f"{far:.6g}", f"{frr:.6g}"])
    return path
