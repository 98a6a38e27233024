"""`facestream eval`: verification and 1:K identification accuracy per model, detection rate per detector.

Verification: with an LFW pairs file, k-fold accuracy on its folds (threshold chosen on the other
folds); without one, every pair of the labelled folder, dealt into stratified folds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from analysis.backends import load_detector, load_models, parse_detector_list
from analysis.dataset import PhotoIndex, labelled_photos, parse_pairs
from analysis.embedding import DetectorTally, EmbeddingRun, embed_photos, require_faces
from analysis.metrics import OperatingPoint, equal_error_rate, far_frr_at, pair_scores, roc_curve
from analysis.plots import plot_roc
from analysis.protocol import (
    IdentificationResult,
    KFoldResult,
    accuracy_at,
    best_threshold,
    identification_accuracy,
    kfold_accuracy,
    stratified_folds,
)
from analysis.report import out_dir, write_report
from bus.errors import FacestreamError


@dataclass
class Verification:
    protocol: str  # "pairs file" or "all pairs"
    genuine: int
    impostor: int
    skipped_pairs: int  # pairs whose photo gave no face
    kfold: KFoldResult | None  # None when there is one fold only
    model_threshold: float
    accuracy_at_model_threshold: float
    best_threshold: float
    best_accuracy: float  # optimistic: threshold chosen on the same pairs
    eer: float | None  # None without both kinds of pairs


@dataclass
class ModelEval:
    model_id: str
    path: Path
    verification: Verification
    identification: IdentificationResult


@dataclass
class Evaluation:
    images: int
    faces: int
    people: int
    skipped: list[tuple[Path, str]]
    models: list[ModelEval]
    detectors: list[DetectorTally]
    files: dict[str, Path] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def model(m: ModelEval) -> dict[str, Any]:
            v, ident = m.verification, m.identification
            return {
                "model_id": m.model_id,
                "path": str(m.path),
                "verification": {
                    "protocol": v.protocol,
                    "genuine_pairs": v.genuine,
                    "impostor_pairs": v.impostor,
                    "skipped_pairs": v.skipped_pairs,
                    "kfold_mean": None if v.kfold is None else v.kfold.mean,
                    "kfold_std": None if v.kfold is None else v.kfold.std,
                    "kfold_accuracies": None if v.kfold is None else v.kfold.accuracies,
                    "kfold_thresholds": None if v.kfold is None else v.kfold.thresholds,
                    "model_threshold": v.model_threshold,
                    "accuracy_at_model_threshold": v.accuracy_at_model_threshold,
                    "best_threshold": v.best_threshold,
                    "best_accuracy": v.best_accuracy,
                    "eer": v.eer,
                },
                "identification": {
                    "probes": ident.probes,
                    "rank1": ident.rank1,
                    "rank1_at_model_threshold": ident.rank1_at_threshold,
                },
            }

        return {
            "command": "eval",
            "images": self.images,
            "faces": self.faces,
            "people": self.people,
            "skipped": [[str(p), r] for p, r in self.skipped],
            "models": [model(m) for m in self.models],
            "detectors": [
                {
                    "name": t.name,
                    "images": t.images,
                    "images_with_face": t.with_face,
                    "rate": t.rate,
                    "faces": t.faces,
                    "ms_per_image": t.ms_per_image,
                }
                for t in self.detectors
            ],
            "files": {k: str(v) for k, v in self.files.items()},
        }


def _pairs_from_file(
    run: EmbeddingRun, vectors: np.ndarray, pairs: Path, index: PhotoIndex, folds: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    row_of = {item.path: n for n, item in enumerate(run.items)}  # one (largest) face per photo
    scores, same, fold_ids, skipped = [], [], [], 0
    for spec in parse_pairs(pairs, folds):
        a, b = index.resolve(spec, pairs)
        if a not in row_of or b not in row_of:
            skipped += 1
            continue
        scores.append(float(np.dot(vectors[row_of[a]].astype(np.float64), vectors[row_of[b]])))
        same.append(spec.same)
        fold_ids.append(spec.fold)
    if not scores:
        raise FacestreamError(f"no pair of {pairs} has a face in both photos")
    return np.array(scores), np.array(same, bool), np.array(fold_ids), skipped


def verify_model(
    run: EmbeddingRun,
    m: int,
    threshold: float,
    pairs: Path | None,
    index: PhotoIndex,
    folds: int,
    progress: bool = False,
) -> tuple[Verification, np.ndarray, np.ndarray]:
    """Verification numbers for model m, with the genuine and impostor scores they came from."""
    vectors = run.vectors[m]
    if pairs is not None:
        scores, same, fold_ids, skipped = _pairs_from_file(run, vectors, pairs, index, folds)
        protocol = f"pairs file {pairs.name}"
    else:
        genuine, impostor = pair_scores(
            vectors,
            run.labels,
            progress=lambda rows: tqdm(rows, desc="eval: pairs", unit="row", disable=not progress),
        )
        scores = np.concatenate([genuine, impostor])
        same = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
        fold_ids = stratified_folds(same, max(2, folds))
        skipped, protocol = 0, "all pairs"
    kfold = kfold_accuracy(scores, same, fold_ids) if len(np.unique(fold_ids)) >= 2 else None
    best_t, best_acc = best_threshold(scores, same)
    genuine, impostor = scores[same], scores[~same]
    eer = None
    if len(genuine) and len(impostor):
        eer = equal_error_rate(roc_curve(genuine, impostor)).rate
    verification = Verification(
        protocol=protocol,
        genuine=len(genuine),
        impostor=len(impostor),
        skipped_pairs=skipped,
        kfold=kfold,
        model_threshold=threshold,
        accuracy_at_model_threshold=accuracy_at(scores, same, threshold),
        best_threshold=best_t,
        best_accuracy=best_acc,
        eer=eer,
    )
    return verification, genuine, impostor


def evaluate(
    folder: Path,
    out: Path,
    models: list[str] | None = None,
    detector: str = "yunet",
    detectors: str = "yunet,haar",
    mtcnn_dir: Path | None = None,
    pairs: Path | None = None,
    folds: int = 10,
    progress: bool = True,
) -> Evaluation:
    if folds < 2:
        raise FacestreamError(f"--folds must be at least 2, got {folds}")
    photos = labelled_photos(folder, exclude=out)
    index = PhotoIndex(photos)
    if pairs is not None:
        for spec in parse_pairs(pairs, folds):  # fail on a bad file before the long pass
            index.resolve(spec, pairs)
    out = out_dir(out)
    primary = load_detector(detector, mtcnn_dir)
    extra = [load_detector(n, mtcnn_dir) for n in parse_detector_list(detectors) if n != detector]
    loaded = load_models(models or ["sface"])
    run = embed_photos(
        photos, primary, loaded, extra_detectors=extra, progress=progress, desc="eval: embedding"
    )
    require_faces(run, folder)
    results, files = [], {}
    for m, emb in enumerate(loaded):
        threshold = float(emb.card.threshold)
        verification, genuine, impostor = verify_model(run, m, threshold, pairs, index, folds, progress)
        ident = identification_accuracy(run.vectors[m], run.labels, threshold)
        results.append(ModelEval(emb.model_id, emb.path, verification, ident))
        if len(genuine) and len(impostor):
            roc = roc_curve(genuine, impostor)
            far, frr = far_frr_at(genuine, impostor, threshold)
            point = OperatingPoint("model threshold", threshold, far, frr)
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", emb.model_id)
            title = f"{emb.model_id}: {verification.protocol}"
            files[f"roc_{m}"] = plot_roc(
                roc, equal_error_rate(roc), point, len(impostor), out / f"roc_{m}_{name}.png", title
            )
    evaluation = Evaluation(
        images=run.images,
        faces=len(run.items),
        people=len(set(run.labels)),
        skipped=run.skipped,
        models=results,
        detectors=run.tallies,
        files=files,
    )
    run.save(out / "embeddings.npz")
    evaluation.files["embeddings"] = out / "embeddings.npz"
    evaluation.files["report"] = out / "report.json"
    write_report(out / "report.json", evaluation.to_json())
    return evaluation
