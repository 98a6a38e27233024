"""Uploaded photos: real images pass, oversized ones and pixel bombs are refused before decoding."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from web.uploads import UploadError, decode_photo

LIMIT, PIXELS = 1 << 20, 4_000_000


def _status(data: bytes) -> int:
    with pytest.raises(UploadError) as err:
        decode_photo(data, LIMIT, PIXELS)
    return err.value.status


def test_real_photos_decode(photos: Path) -> None:
    data = (photos / "obama_1.jpg").read_bytes()
    image = decode_photo(data, LIMIT, PIXELS)
    assert image.dtype == np.uint8 and image.ndim == 3
    png = cv2.imencode(".png", image)[1].tobytes()
    assert decode_photo(png, 8 * LIMIT, PIXELS).shape == image.shape


def test_bombs_garbage_and_other_formats_are_refused() -> None:
    bomb = io.BytesIO()
    Image.new("L", (3000, 3000)).save(bomb, "PNG")  # 9 Mpx in a few kB
    assert len(bomb.getvalue()) < LIMIT and _status(bomb.getvalue()) == 413
    assert _status(b"\xff\xd8" + b"\x00" * (LIMIT + 1)) == 413
    assert _status(b"") == 400 and _status(b"GIF89a" + b"\x00" * 100) == 400
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    assert _status(gif.getvalue()) == 400  # a real image, but not a format we take
    truncated = cv2.imencode(".jpg", np.full((64, 64, 3), 80, np.uint8))[1].tobytes()[:40]
    assert _status(truncated) == 400
