"""Hostile payloads made by hand, shared by the red-team tests: real JPEG files that lie."""

from __future__ import annotations

import json

import cv2
import numpy as np


def jpeg(width: int = 16, height: int = 16) -> bytes:
    """An honest baseline JPEG of random pixels."""
    image = np.random.default_rng(1).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def claiming(data: bytes, width: int, height: int) -> bytes:
    """The same JPEG with a frame header that claims another size: a JPEG bomb when it is large."""
    out = bytearray(data)
    sof = out.index(b"\xff\xc0")
    out[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    out[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    return bytes(out)


def jpeg_message(kind: str, camera_id: str, data: bytes, shape: list[int], **fields: object) -> list[bytes]:
    """A message written by hand from docs/wire.md whose one part is the JPEG `data`, declared `shape`."""
    header = {
        "schema_version": 1,
        "kind": kind,
        "camera_id": camera_id,
        "seq": 1,
        "ts_ns": 1,
        **fields,
        "parts": [{"dtype": "uint8", "shape": shape, "encoding": "jpeg"}],
    }
    return [(camera_id + "\0").encode(), json.dumps(header).encode(), data]
