"""The `facestream` command. Errors a user can fix print one line, never a traceback."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis.cli import register as register_analysis
from bus.config import DetectConfig, load_config
from bus.errors import EXIT_CODES, ExitReason, FacestreamError
from bus.logs import setup_logging
from bus.topology import STAGES
from deploy.keys import register as register_keys
from trainer.cli import register as register_training

log = logging.getLogger("facestream.cli")

# match.index.INDEX_KINDS, spelled out so that start-up does not import FAISS (a test keeps them equal)
INDEX_KINDS = ("flat", "hnsw", "ivf", "sketch")
# Modules of the optional extras (pyproject.toml), so a missing one names the extra to install.
EXTRAS = {
    "train": ("tensorflow", "tf2onnx", "keras", "mtcnn", "mlxtend"),
    "postgres": ("psycopg",),
}


def _analyzer(args: argparse.Namespace):
    from faces.analyzer import FaceAnalyzer

    return FaceAnalyzer(DetectConfig(backend=args.detector), model=args.model)


def cmd_demo(args: argparse.Namespace) -> int:
    from deploy.demo import run_demo

    def started(url: str) -> None:
        print(f"console: {url} (the clips loop; Ctrl-C stops)", flush=True)

    result = run_demo(
        args.out,
        detector=args.detector,
        workers=args.workers,
        mjpeg_port=args.mjpeg_port,
        serve_port=args.web_port if args.serve else None,
        on_started=started,
    )
    s = result.summary
    names = ", ".join(str(n) for n in s.get("identities", [])) or "none"  # type: ignore[attr-defined]
    print(
        f"demo: {s['frames']} frames from {len(s.get('per_camera', {}))} cameras, "  # type: ignore[arg-type]
        f"{s['faces']} faces, identities: {names} (+{s['unknown_faces']} Unknown faces), "
        f"{float(s['fps']):.1f} frames/s"  # type: ignore[arg-type]
    )
    print(
        f"shown: {s['frames_with_result']} frames with their own result, {s['frames_without_result']} "
        "without boxes (result too late: never another frame's); "
        f"{s['tracked_faces']} of {s['faces']} boxes carried by tracks between detections"
    )
    print(f"truth check, photos clip: {result.truth.summary()}")
    for video in result.videos:
        print(f"overlay video: {video}")
    print(f"per-frame results: {result.out_dir / 'results.jsonl'}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from deploy.preflight import preflight
    from deploy.supervisor import Supervisor, default_run_dir, owns_run_dir

    config = load_config(args.config)
    preflight(config)
    supervisor = Supervisor(config, args.config, default_run_dir(config), owns_run_dir=owns_run_dir(config))
    code = supervisor.run()
    if code != 0 and supervisor.last_error:
        lost = code == EXIT_CODES[ExitReason.CAMERA_LOST]  # its own code, so that restart policies see it
        raise FacestreamError(supervisor.last_error, exit_code=code if lost else 2)
    return code


def cmd_stage(args: argparse.Namespace) -> int:
    from deploy.stage_main import end_process, run_stage

    end_process(run_stage(args.name, args.config, args.index, args.ready_file, args.exit_file))


def _print_conversion(gallery: Path, old: str | None, new: str | None) -> None:
    if old is not None:
        print(f"gallery {gallery}: index converted from {old} to {new}")


def cmd_enroll(args: argparse.Namespace) -> int:
    from faces.enroll import convert_gallery, enroll, enroll_from_camera

    if args.camera is not None:
        if args.sources:
            raise FacestreamError("give either photos or --camera, not both")
        if not args.name:
            raise FacestreamError("--camera needs --name: who is in front of the camera?")
        cam = enroll_from_camera(
            args.gallery,
            args.camera,
            args.name,
            _analyzer(args),
            args.frames,
            args.snapshot,
            args.index,
            allow_lookalike=args.allow_lookalike,
        )
        _print_conversion(args.gallery, cam.converted_from, args.index)
        print(f"enrolled {args.name}: 1 face from camera {args.camera}")
        if cam.snapshot is not None:
            print(f"snapshot: {cam.snapshot}")
        print(f"gallery {args.gallery}: saved")
        return 0
    if not args.sources:
        if args.index is None:
            raise FacestreamError(
                "nothing to enroll: give folders or images, --camera SOURCE, or --index KIND to convert"
            )
        old = convert_gallery(args.gallery, args.index)
        if old is None:
            print(f"gallery {args.gallery}: index is already {args.index}, unchanged")
        _print_conversion(args.gallery, old, args.index)
        return 0
    report = enroll(
        args.gallery,
        args.sources,
        _analyzer(args),
        name=args.name,
        progress=not args.quiet,
        index=args.index,
        allow_lookalike=args.allow_lookalike,
    )
    _print_conversion(args.gallery, report.converted_from, args.index)
    for name, count in sorted(report.enrolled.items()):
        print(f"enrolled {name}: {count} photo{'s' if count != 1 else ''}")
    for path, reason in report.skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(f"gallery {args.gallery}: saved")
    return 0 if not report.skipped else 1


def cmd_verify(args: argparse.Namespace) -> int:
    from match.gallery import Gallery, check_threshold

    if args.threshold is not None:
        check_threshold(args.threshold)  # before any model loads
    analyzer = _analyzer(args)
    a, b = analyzer.embed_file(args.image1), analyzer.embed_file(args.image2)
    similarity = Gallery.verify(a.vector, b.vector)
    threshold = analyzer.threshold if args.threshold is None else args.threshold
    same = similarity >= threshold
    verdict = "same person" if same else "different people"
    print(f"{verdict}: cosine similarity {similarity:.3f} (threshold {threshold:.3f})")
    return 0 if same else 1


def cmd_identify(args: argparse.Namespace) -> int:
    from faces.images import read_image
    from match.gallery import Gallery, check_threshold

    if args.threshold is not None:
        check_threshold(args.threshold)
    analyzer = _analyzer(args)
    gallery = Gallery.load(args.gallery, expect_model_id=analyzer.model_id)
    if len(gallery) == 0:
        raise FacestreamError(f"gallery {args.gallery} is empty: enroll faces first")
    found = analyzer.faces(read_image(args.image))
    if not found:
        raise FacestreamError(f"no face found in {args.image}")
    import numpy as np

    ids = gallery.identify(np.stack([f.vector for f in found]), threshold=args.threshold, k=args.k)
    limit = gallery.threshold if args.threshold is None else args.threshold
    # Left to right, as a person reads the photo.
    for f, ident in sorted(zip(found, ids, strict=True), key=lambda pair: pair[0].face.box[0]):
        x, y, w, h = (round(v) for v in f.face.box)
        others = ", ".join(f"{n} {s:.3f}" for n, s in ident.candidates[1:])
        extra = f" (next: {others})" if others else ""
        if ident.name == ident.best_name:
            said = f"{ident.name} {ident.similarity:.3f}"
        else:  # below the threshold: say whom the score is about
            said = f"{ident.name} (closest: {ident.best_name} {ident.similarity:.3f}, below {limit:.3f})"
        print(f"face at x={x} y={y} w={w} h={h}: {said}{extra}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facestream", description=__doc__)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress at INFO level (run and stage always do)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def face_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--detector", default="yunet", choices=["yunet", "haar", "mtcnn"])
        p.add_argument("--model", default="sface", help="'sface' or an exported ONNX file")

    p = sub.add_parser("demo", help="run the full pipeline on a bundled clip and real photos")
    p.add_argument("--out", type=Path, default=Path("facestream-demo"), help="output folder")
    p.add_argument("--detector", default="yunet", choices=["yunet", "haar"])
    p.add_argument("--workers", type=int, default=1, help="detect and embed processes")
    p.add_argument("--mjpeg-port", type=int, default=None, help="also serve the live page")
    p.add_argument(
        "--serve",
        action="store_true",
        help="loop the clips and keep the operator's console up (Ctrl-C stops)",
    )
    p.add_argument("--web-port", type=int, default=8000, help="--serve: the console's port (default 8000)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="run the pipeline described by a YAML config")
    p.add_argument("config", type=Path)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("stage", help="run one stage process (any host; addresses from the config)")
    p.add_argument("name", choices=list(STAGES))
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--index", type=int, default=0, help="camera index (capture) or worker number")
    p.add_argument("--ready-file", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--exit-file",
        type=Path,
        default=None,
        help="write why the stage ended here, as one JSON line (e.g. /dev/termination-log)",
    )
    p.set_defaults(func=cmd_stage)

    p = sub.add_parser("enroll", help="add faces to a gallery from a folder or images")
    p.add_argument("gallery", type=Path)
    p.add_argument("sources", type=Path, nargs="*", help="folder (name.jpg or name/*.jpg) or images")
    p.add_argument("--name", default=None, help="enroll every photo given as this person")
    p.add_argument(
        "--camera", default=None, help="one-shot from a camera: webcam index, rtsp/http URL or video file"
    )
    p.add_argument("--frames", type=int, default=100, help="--camera: frames to try for a face")
    p.add_argument("--snapshot", type=Path, default=None, help="--camera: save the enrolled frame here")
    p.add_argument(
        "--allow-lookalike",
        action="store_true",
        help="enroll a face even when the gallery already names it as someone else",
    )
    p.add_argument(
        "--index",
        default=None,
        choices=INDEX_KINDS,
        help="FAISS index kind: a new gallery gets it (default flat), an existing one is converted; "
        "without photos, only converts",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    face_options(p)
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("verify", help="1:1: are two photos the same person?")
    p.add_argument("image1", type=Path)
    p.add_argument("image2", type=Path)
    p.add_argument("--threshold", type=float, default=None, help="default: the model's own")
    face_options(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("identify", help="1:K: who is in this photo?")
    p.add_argument("gallery", type=Path)
    p.add_argument("image", type=Path)
    p.add_argument("--threshold", type=float, default=None, help="default: the gallery's own")
    p.add_argument("-k", type=int, default=3, help="candidates to show")
    face_options(p)
    p.set_defaults(func=cmd_identify)

    # Registered statically: their parsers import nothing heavy (the handlers do), so a broken
    # import fails here, loudly, instead of turning a command into "invalid choice".
    register_training(sub)
    register_analysis(sub)
    register_keys(sub)
    return parser


def missing_module(command: str, exc: ModuleNotFoundError) -> str | None:
    """One line naming the optional extra a command needs; None for any other missing module."""
    name = (exc.name or "").split(".")[0]
    extra = next((e for e, mods in EXTRAS.items() if name in mods), None)
    if extra is None:
        return None
    return f"`facestream {command}` needs {name}, which is not installed: pip install 'facestream[{extra}]'"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("INFO" if args.verbose or args.command in ("run", "stage") else "WARNING", native=True)
    try:
        code: int = args.func(args)
    except FacestreamError as exc:
        print(f"facestream: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        line = missing_module(args.command, exc)
        if line is None:
            raise  # not an optional extra: a broken install, its traceback says where
        print(f"facestream: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
