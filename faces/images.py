"""Reading photos and fitting them into frames, for every tool that handles single images."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from bus.errors import FacestreamError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
_NUMBERED = re.compile(r"^(.*?)[_-]\d+$")


def name_from_stem(stem: str) -> str:
    """Whose photo a loose file is: `alice.jpg` and `alice_2.jpg` both belong to alice."""
    match = _NUMBERED.match(stem)
    return match.group(1) if match and match.group(1) else stem


def read_image(path: Path) -> np.ndarray:
    """Read a BGR image or fail with a one-line reason."""
    path = Path(path)
    if not path.exists():
        raise FacestreamError(f"image {path} not found")
    if path.is_dir():
        raise FacestreamError(f"{path} is a folder, expected an image file")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise FacestreamError(f"cannot read image {path}: not an image or a corrupt file")
    return image


def letterbox_transform(image_size: tuple[int, int], size: tuple[int, int]) -> tuple[float, int, int]:
    """(scale, x offset, y offset) that letterbox an image of image_size (w, h) into size."""
    w, h = size
    iw, ih = image_size
    scale = min(w / iw, h / ih)
    return scale, (w - round(iw * scale)) // 2, (h - round(ih * scale)) // 2


def letterbox(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    scale, x0, y0 = letterbox_transform((image.shape[1], image.shape[0]), size)
    resized = cv2.resize(
        image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA
    )
    canvas = np.full((h, w, 3), 32, np.uint8)
    canvas[y0 : y0 + resized.shape[0], x0 : x0 + resized.shape[1]] = resized
    return canvas
