"""`facestream calibrate | cluster | eval`: registered into the main CLI by deploy.cli."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from bus.errors import FacestreamError


def _pct(value: float | None) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}%"
    )


def _common(p: argparse.ArgumentParser, command: str) -> None:
    layout = "photos at any depth (unlabelled)" if command == "cluster" else "photos as FOLDER/person/*.jpg"
    p.add_argument("folder", type=Path, help=layout)
    p.add_argument(
        "--detector",
        default="yunet",
        choices=["yunet", "haar", "mtcnn"],
        help="face detector for the embeddings",
    )
    p.add_argument("--mtcnn-dir", type=Path, default=None, help="folder of the exported MTCNN ONNX files")
    p.add_argument(
        "--out", type=Path, default=Path(f"facestream-{command}"), help="folder for plots, CSV, report"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _skipped(skipped: list[tuple[Path, str]]) -> None:
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from analysis.calibrate import calibrate
    from analysis.writeback import (
        check_config_target,
        check_gallery_target,
        write_config_threshold,
        write_gallery_threshold,
    )

    # Where the threshold is to go is checked before the work, so nothing is half applied.
    if args.write_config is not None:
        check_config_target(args.write_config)
    if args.write_gallery is not None:
        check_gallery_target(args.write_gallery)
    r = calibrate(
        args.folder,
        args.out,
        model=args.model,
        detector=args.detector,
        mtcnn_dir=args.mtcnn_dir,
        target_far=args.target_far,
        progress=not args.quiet,
    )
    _skipped(r.skipped)
    g, i = r.genuine, r.impostor
    print(
        f"calibrate {r.model_id} ({r.detector}): {r.faces} faces of {r.people} people from {r.images} images"
    )
    print(f"genuine pairs {len(g)}: similarity mean {g.mean():.3f}, min {g.min():.3f}")
    print(f"impostor pairs {len(i)}: similarity mean {i.mean():.3f}, max {i.max():.3f}")
    print(f"EER {_pct(r.eer.rate)} at threshold {r.eer.threshold:.4f}")
    print(f"{'operating point':<16} {'threshold':>10} {'FAR':>9} {'FRR':>9}")
    for row in r.table:
        print(f"{row.label:<16} {row.threshold:>10.4f} {_pct(row.far):>9} {_pct(row.frr):>9}")
    measurable = r.target_far * len(i) >= 1
    if not measurable:
        print(
            f"note: with {len(i)} impostor pairs the smallest measurable FAR is {1 / len(i):.2g}; "
            f"the threshold for FAR<={r.target_far:g} lies just above the highest impostor score"
        )
    c = r.chosen
    value = written_threshold(c.threshold)
    print(
        f"threshold for FAR<={r.target_far:g}: {value:.4f} "
        f"(measured FAR {_pct(c.far)}, FRR {_pct(c.frr)}; model default {r.model_threshold:.4f})"
    )
    _files(r.files)
    wants_write = args.write_config is not None or args.write_gallery is not None
    if wants_write and not measurable:
        # A threshold just above the highest impostor seen is no FAR guarantee: the next
        # stranger may score higher. Writing it would name strangers; the user must bring more.
        raise FacestreamError(
            f"threshold not written: FAR<={r.target_far:g} cannot be measured with {len(i)} impostor "
            f"pairs (add photos of more people: at least {math.ceil(1 / r.target_far)} pairs, or "
            f"pass --target-far {_measurable(len(i))} or more)"
        )
    if args.write_gallery is not None:  # a gallery of another model is refused before the config changes
        write_gallery_threshold(args.write_gallery, value, r.model_id)
        print(f"wrote threshold {value:.4f} into gallery {args.write_gallery}")
    if args.write_config is not None:
        kept = write_config_threshold(args.write_config, value)
        extra = "" if kept else " (rewritten: comments were not kept)"
        print(f"wrote match.threshold {value:.4f} into {args.write_config}{extra}")
    return 0


def written_threshold(threshold: float) -> float:
    """Four decimals, rounded up: what is printed is what is written, and it still rejects
    every impostor score the exact threshold rejected."""
    return min(1.0, math.ceil(threshold * 1e4 - 1e-9) / 1e4)


def _measurable(pairs: int) -> str:
    return f"{math.ceil(1e4 / pairs) / 1e4:g}"


def cmd_cluster(args: argparse.Namespace) -> int:
    from analysis.cluster import cluster

    r = cluster(
        args.folder,
        args.out,
        model=args.model,
        detector=args.detector,
        mtcnn_dir=args.mtcnn_dir,
        k=args.k,
        max_k=args.max_k,
        copy=args.copy,
        progress=not args.quiet,
    )
    _skipped(r.skipped)
    print(f"cluster {r.model_id}: {r.faces} faces from {r.images} images")
    for k, inertia, sil in zip(r.sweep.ks, r.sweep.inertias, r.sweep.silhouettes, strict=True):
        print(f"  K={k:<3} inertia {inertia:8.3f}  silhouette {'-' if sil is None else f'{sil:.3f}'}")
    print(f"suggested K={r.suggested} (by {r.suggested_by}; elbow at K={r.elbow})")
    how = "given with --k" if args.k is not None else "suggested"
    print(f"K={r.k} ({how}): cluster sizes {', '.join(str(s) for s in r.sizes())}")
    if r.folder_purity is not None:
        print(
            f"against the subfolder names: purity {_pct(r.folder_purity)}, "
            f"inverse purity {_pct(r.folder_inverse_purity)}"
        )
    _files(r.files)
    if args.copy:
        print(
            "rename each cluster_NN folder to the person's name, then: facestream enroll GALLERY "
            f"{r.files['folders']}"
        )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from analysis.evaluate import evaluate

    r = evaluate(
        args.folder,
        args.out,
        models=args.model or ["sface"],
        detector=args.detector,
        detectors=args.detectors,
        mtcnn_dir=args.mtcnn_dir,
        pairs=args.pairs,
        folds=args.folds,
        progress=not args.quiet,
    )
    _skipped(r.skipped)
    print(f"eval: {r.faces} faces of {r.people} people from {r.images} images")
    for m in r.models:
        v, ident = m.verification, m.identification
        print(f"model {m.model_id} ({m.path.name})")
        print(
            f"  verification, {v.protocol}: {v.genuine} genuine + {v.impostor} impostor pairs"
            + (f", {v.skipped_pairs} skipped (no face)" if v.skipped_pairs else "")
        )
        if v.kfold is not None:
            print(f"    {len(v.kfold.accuracies)}-fold accuracy {_pct(v.kfold.mean)} +- {_pct(v.kfold.std)}")
        print(
            f"    accuracy at the model threshold {v.model_threshold:.3f}: "
            f"{_pct(v.accuracy_at_model_threshold)}"
        )
        print(
            f"    best accuracy {_pct(v.best_accuracy)} at {v.best_threshold:.3f} "
            "(threshold fit on these pairs)"
        )
        print(f"    EER {_pct(v.eer)}")
        print(
            f"  identification 1:K, leave-one-out over {ident.probes} probes: rank-1 {_pct(ident.rank1)}, "
            f"correct and above threshold {_pct(ident.rank1_at_threshold)}"
        )
    for t in r.detectors:
        print(
            f"detector {t.name}: faces found in {t.with_face}/{t.images} images ({_pct(t.rate)}), "
            f"{t.faces} faces, {t.ms_per_image:.1f} ms/image"
        )
    _files(r.files)
    return 0


def _files(files: dict[str, Any]) -> None:
    for key, path in files.items():
        print(f"{key}: {path}")


def register(sub: Any) -> None:
    """Add the analysis commands to the `facestream` subparsers."""
    p = sub.add_parser("calibrate", help="ROC, EER and the threshold for a target FAR from labelled photos")
    _common(p, "calibrate")
    p.add_argument("--model", default="sface", help="'sface' or an ONNX file with a facestream model card")
    p.add_argument(
        "--target-far", type=float, default=1e-3, help="false accept rate to pick the threshold for"
    )
    p.add_argument(
        "--write-config",
        type=Path,
        default=None,
        metavar="CONFIG.yaml",
        help="set match.threshold in this config (the rest is kept)",
    )
    p.add_argument(
        "--write-gallery",
        type=Path,
        default=None,
        metavar="GALLERY",
        help="store the threshold in this gallery",
    )
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("cluster", help="group unlabelled faces (K-means), to name and enroll them")
    _common(p, "cluster")
    p.add_argument("--model", default="sface", help="'sface' or an ONNX file with a facestream model card")
    p.add_argument("--k", type=int, default=None, help="number of clusters (default: suggested)")
    p.add_argument("--max-k", type=int, default=10, help="largest K tried for the suggestion")
    p.add_argument("--copy", action="store_true", help="also write the clusters as folders cluster_NN/")
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser(
        "eval", help="verification/identification accuracy per model, detection rate per detector"
    )
    _common(p, "eval")
    p.add_argument(
        "--model",
        action="append",
        default=None,
        help="'sface' or an ONNX file; repeat to compare models (default: sface)",
    )
    p.add_argument(
        "--detectors", default="yunet,haar", help="detectors to count faces with, e.g. yunet,haar,mtcnn"
    )
    p.add_argument("--pairs", type=Path, default=None, help="LFW-format pairs file (else: all pairs)")
    p.add_argument(
        "--folds", type=int, default=10, help="folds when the pairs file has no header, or for all pairs"
    )
    p.set_defaults(func=cmd_eval)
