"""Uploaded photos, decoded safely: size and pixel limits are checked on the header, before decoding.

Only JPEG, PNG and WebP are accepted; Pillow reads the header (format, width, height) without
decoding the pixels, so a small file that would expand to gigabytes is refused up front.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image

from web.errors import HttpProblem

FORMATS = ("JPEG", "PNG", "WEBP")


class UploadError(HttpProblem):
    """413 too big, 400 not a usable image."""


def decode_photo(data: bytes, max_bytes: int, max_pixels: int) -> np.ndarray:
    """A BGR image from an upload, or UploadError (413 too big, 400 not a usable image)."""
    if len(data) > max_bytes:
        raise UploadError(413, f"the photo is over {max_bytes} bytes")
    if not data:
        raise UploadError(400, "the photo is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as header:
                width, height = header.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UploadError(413, "the photo has too many pixels") from exc
    except Exception as exc:  # Pillow raises many kinds for garbage; all mean the same here
        raise UploadError(400, f"not a JPEG, PNG or WebP image ({type(exc).__name__})") from exc
    if width < 1 or height < 1 or width * height > max_pixels:
        raise UploadError(413, f"the photo has {width}x{height} pixels; at most {max_pixels} are accepted")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape[:2] != (height, width):
        raise UploadError(400, "the photo could not be decoded")
    return image
