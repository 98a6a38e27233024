"""`facestream cluster`: group unlabelled faces so a user can name the groups and enroll them.

Outputs: clusters.csv (always), elbow.png, scatter.png, report.json, and with copy=True one
folder per cluster holding the photos (or, for photos with several faces, the face crops):
rename `cluster_00` to the person's name and `facestream enroll GALLERY clusters/` enrolls it.
"""

from __future__ import annotations

import csv
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from analysis.backends import load_detector, load_models
from analysis.clustering import (
    KSweep,
    elbow_k,
    inverse_purity,
    kmeans,
    project_2d,
    purity,
    suggest_k,
    sweep_k,
)
from analysis.dataset import any_photos
from analysis.embedding import EmbeddingRun, embed_photos, face_crop, require_faces
from analysis.plots import plot_elbow, plot_scatter
from analysis.report import out_dir, write_report
from bus.errors import FacestreamError
from faces.images import read_image

COPY_MARGIN = 0.6  # face crops keep this much context so the detector finds them again at enrollment
_OLD_CLUSTER = re.compile(r"^cluster_\d+$")


@dataclass
class Clustering:
    model_id: str
    images: int
    faces: int
    skipped: list[tuple[Path, str]]
    sweep: KSweep
    suggested: int
    suggested_by: str
    elbow: int
    k: int
    clusters: np.ndarray  # per face, 0 = the biggest cluster
    points: np.ndarray  # (n, 2) PCA coordinates
    folder_purity: float | None  # against the first-level folder names, when there are some
    folder_inverse_purity: float | None
    files: dict[str, Path] = field(default_factory=dict)

    def sizes(self) -> list[int]:
        return [int(np.count_nonzero(self.clusters == c)) for c in range(self.k)]

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "cluster",
            "model_id": self.model_id,
            "images": self.images,
            "faces": self.faces,
            "skipped": [[str(p), r] for p, r in self.skipped],
            "ks": self.sweep.ks,
            "inertias": self.sweep.inertias,
            "silhouettes": self.sweep.silhouettes,
            "suggested_k": self.suggested,
            "suggested_by": self.suggested_by,
            "elbow_k": self.elbow,
            "k": self.k,
            "cluster_sizes": self.sizes(),
            "folder_purity": self.folder_purity,
            "folder_inverse_purity": self.folder_inverse_purity,
            "files": {k: str(v) for k, v in self.files.items()},
        }


def order_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters: 0 = the largest, ties by first appearance."""
    counts = Counter(labels.tolist())
    first = {c: int(np.flatnonzero(labels == c)[0]) for c in counts}
    order = sorted(counts, key=lambda c: (-counts[c], first[c]))
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping[v] for v in labels.tolist()], np.int64)


def cluster(
    folder: Path,
    out: Path,
    model: str = "sface",
    detector: str = "yunet",
    mtcnn_dir: Path | None = None,
    k: int | None = None,
    max_k: int = 10,
    copy: bool = False,
    progress: bool = True,
) -> Clustering:
    if k is not None and k < 1:
        raise FacestreamError(f"--k must be at least 1, got {k}")
    if max_k < 2:
        raise FacestreamError(f"--max-k must be at least 2, got {max_k}")
    photos = any_photos(folder, exclude=out)
    out = out_dir(out)
    det = load_detector(detector, mtcnn_dir)
    (emb,) = load_models([model])
    run = embed_photos(
        photos, det, [emb], all_faces=True, thumbs=True, progress=progress, desc="cluster: embedding"
    )
    require_faces(run, folder)
    x = run.vectors[0]
    n = len(x)
    if n < 2:
        raise FacestreamError(f"only one face found in {folder}: clustering needs at least 2")
    if k is not None and k > n:
        raise FacestreamError(f"--k {k} is more than the {n} faces found")
    sweep = sweep_k(
        x, max_k, progress=lambda it: tqdm(list(it), desc="cluster: K-means", unit="K", disable=not progress)
    )
    suggested, reason = suggest_k(sweep)
    elbow = elbow_k(sweep.ks, sweep.inertias)
    chosen = k if k is not None else suggested
    labels = sweep.labels[chosen] if chosen in sweep.labels else kmeans(x, chosen)[0]
    clusters = order_by_size(labels)
    truth = run.labels
    labelled = len({t for t in truth if t}) >= 2
    result = Clustering(
        model_id=emb.model_id,
        images=run.images,
        faces=n,
        skipped=run.skipped,
        sweep=sweep,
        suggested=suggested,
        suggested_by=reason,
        elbow=elbow,
        k=chosen,
        clusters=clusters,
        points=project_2d(x),
        folder_purity=purity(clusters, truth) if labelled else None,
        folder_inverse_purity=inverse_purity(clusters, truth) if labelled else None,
    )
    result.files["csv"] = _write_csv(run, result, folder, out / "clusters.csv")
    result.files["elbow"] = plot_elbow(sweep, chosen, elbow, out / "elbow.png")
    title = f"{n} faces from {run.images} photos, K={chosen} ({emb.model_id}, PCA of the embeddings)"
    result.files["scatter"] = plot_scatter(result.points, clusters, run.thumbs, out / "scatter.png", title)
    if copy:
        result.files["folders"] = _copy_clusters(run, clusters, folder, out / "clusters", progress)
    run.save(out / "embeddings.npz")
    result.files["embeddings"] = out / "embeddings.npz"
    result.files["report"] = out / "report.json"
    write_report(out / "report.json", result.to_json())
    return result


def _write_csv(run: EmbeddingRun, result: Clustering, folder: Path, path: Path) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "face", "cluster", "x", "y", "box_x", "box_y", "box_w", "box_h", "folder"])
        for item, c, (px, py) in zip(run.items, result.clusters, result.points, strict=True):
            bx, by, bw, bh = (round(float(v), 1) for v in item.box)
            writer.writerow(
                [
                    str(item.path),
                    item.face,
                    int(c),
                    f"{px:.5f}",
                    f"{py:.5f}",
                    bx,
                    by,
                    bw,
                    bh,
                    item.label or "",
                ]
            )
    return path


def _copy_clusters(
    run: EmbeddingRun, clusters: np.ndarray, folder: Path, target: Path, progress: bool
) -> Path:
    """cluster_NN/ folders; earlier cluster_NN folders are replaced, renamed ones are left alone."""
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        if old.is_dir() and _OLD_CLUSTER.match(old.name):
            shutil.rmtree(old)
    per_photo = Counter(item.path for item in run.items)
    for item, c in tqdm(
        list(zip(run.items, clusters, strict=True)),
        desc="cluster: copying",
        unit="face",
        disable=not progress,
    ):
        dest = target / f"cluster_{int(c):02d}"
        dest.mkdir(exist_ok=True)
        flat = "__".join(item.path.relative_to(folder).parts)
        if per_photo[item.path] == 1:
            shutil.copy2(item.path, dest / flat)
        else:
            crop = face_crop(read_image(item.path), item.box, COPY_MARGIN)
            name = f"{Path(flat).stem}_face{item.face}.png"
            if not cv2.imwrite(str(dest / name), crop):
                raise FacestreamError(f"cannot write {dest / name}")
    return target
