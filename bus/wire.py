"""The multipart wire format: [topic, header JSON, payload parts...] (see docs/wire.md).

Payloads are raw C-contiguous ndarray bytes or JPEG; never pickle.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from bus import SCHEMA_VERSION
from bus.errors import WireError

ALLOWED_DTYPES = frozenset({"uint8", "float32", "float16", "int32", "int64", "float64"})
MAX_HEADER_BYTES = 1 << 20
MAX_PART_BYTES = 64 << 20
MAX_DIMS = 4
MAX_DIM = 1 << 15


@dataclass(frozen=True)
class Message:
    """One decoded message: its header dict and its payload arrays."""

    topic: str
    header: dict[str, Any]
    parts: list[np.ndarray] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.header["kind"])


def encode(
    topic: str,
    header: dict[str, Any],
    parts: Sequence[np.ndarray] = (),
    jpeg_quality: int | None = None,
) -> list[bytes | memoryview]:
    """Build the frames of one message; arrays go out without a copy where they are contiguous.

    With `jpeg_quality`, uint8 HxWx3 parts are sent as JPEG (for links where bandwidth matters).
    """
    descriptors: list[dict[str, Any]] = []
    frames: list[bytes | memoryview] = []
    for part in parts:
        arr = np.ascontiguousarray(part)
        if jpeg_quality is not None and arr.dtype == np.uint8 and arr.ndim == 3:
            ok, buf = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
            if not ok:
                raise WireError("encode_failed", "JPEG encoding failed")
            descriptors.append({"dtype": "uint8", "shape": list(arr.shape), "encoding": "jpeg"})
            frames.append(buf.tobytes())
        else:
            if arr.dtype.name not in ALLOWED_DTYPES:
                raise WireError("bad_dtype", f"dtype {arr.dtype} cannot go on the wire")
            descriptors.append({"dtype": arr.dtype.name, "shape": list(arr.shape), "encoding": "raw"})
            frames.append(arr.data.cast("B") if arr.size else b"")
    full = {"schema_version": SCHEMA_VERSION, **header, "parts": descriptors}
    head = json.dumps(full, separators=(",", ":")).encode()
    return [topic.encode(), head, *frames]


def _decode_part(desc: Any, data: bytes | memoryview) -> np.ndarray:
    if not isinstance(desc, dict):
        raise WireError("malformed_header", "part descriptor is not an object")
    dtype, shape, encoding = desc.get("dtype"), desc.get("shape"), desc.get("encoding", "raw")
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        raise WireError("bad_dtype", f"dtype {dtype!r} is not allowed")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DIM for d in shape)
    ):
        raise WireError("bad_shape", f"shape {shape!r} is not a list of at most {MAX_DIMS} sizes")
    if len(data) > MAX_PART_BYTES:
        raise WireError("oversize", f"part of {len(data)} bytes exceeds {MAX_PART_BYTES}")
    if encoding == "jpeg":
        if dtype != "uint8" or len(shape) != 3:
            raise WireError("bad_shape", "a JPEG part must be uint8 HxWxC")
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None or list(img.shape) != shape:
            raise WireError("bad_payload", "JPEG part does not decode to its declared shape")
        return img
    if encoding != "raw":
        raise WireError("malformed_header", f"unknown encoding {encoding!r}")
    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if expected != len(data):
        raise WireError("bad_payload", f"part has {len(data)} bytes, shape {shape} needs {expected}")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def decode(frames: Sequence[bytes | memoryview | Any]) -> Message:
    """Parse and validate one message; raise WireError (never anything else) when it is bad."""
    try:
        raw = [f.buffer if hasattr(f, "buffer") else f for f in frames]
    except Exception as exc:  # pragma: no cover - zmq.Frame always has .buffer
        raise WireError("malformed_frames", str(exc)) from exc
    if len(raw) < 2:
        raise WireError("malformed_frames", f"expected at least 2 frames, got {len(raw)}")
    try:
        topic = bytes(raw[0]).decode()
    except UnicodeDecodeError as exc:
        raise WireError("malformed_topic", "topic is not UTF-8") from exc
    if len(raw[1]) > MAX_HEADER_BYTES:
        raise WireError("oversize", "header exceeds 1 MiB")
    try:
        header = json.loads(bytes(raw[1]))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: also huge ints
        raise WireError("malformed_header", "header is not JSON") from exc
    if not isinstance(header, dict):
        raise WireError("malformed_header", "header is not a JSON object")
    version = header.get("schema_version")
    if version != SCHEMA_VERSION:
        raise WireError("bad_version", f"schema_version {version!r}, expected {SCHEMA_VERSION}")
    for key, typ in (("kind", str), ("camera_id", str), ("seq", int), ("ts_ns", int)):
        if not isinstance(header.get(key), typ) or isinstance(header.get(key), bool):
            raise WireError("malformed_header", f"header field {key!r} missing or not {typ.__name__}")
    if header["camera_id"] != topic:
        raise WireError("malformed_header", "topic and camera_id differ")
    descs = header.get("parts", [])
    if not isinstance(descs, list) or len(descs) != len(raw) - 2:
        raise WireError("malformed_header", "parts list does not match the payload frames")
    parts = [_decode_part(d, p) for d, p in zip(descs, raw[2:], strict=True)]
    return Message(topic=topic, header=header, parts=parts)
