"""The multipart wire format: [topic, header JSON, payload parts...] (see docs/wire.md).

Payloads are raw C-contiguous little-endian ndarray bytes or JPEG; never pickle. Nothing is
decoded before it has been checked against the limits: a JPEG's own header must agree with its
declared shape, and no part may hold more than MAX_PART_BYTES of array data.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from bus import SCHEMA_VERSION
from bus.errors import Fault, WireError
from bus.jpeg import jpeg_size

ALLOWED_DTYPES = frozenset({"uint8", "float32", "float16", "int32", "int64", "float64"})
MAX_HEADER_BYTES = 1 << 20
MAX_PART_BYTES = 64 << 20  # on the wire and once decoded (a 4K BGR frame is 24 MiB)
MAX_DIMS = 4
MAX_DIM = 1 << 15
# The topic frame is the camera id and this terminator, so that subscribing to b"cam1\0" gets
# camera cam1 only (ZeroMQ matches prefixes: b"cam1" alone would also get cam10).
TOPIC_END = "\0"


def topic_of(camera_id: str) -> bytes:
    """The topic frame of a camera's messages, and the exact subscription for that camera."""
    return (camera_id + TOPIC_END).encode()


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
                raise WireError(Fault.BAD_PAYLOAD, "JPEG encoding failed")
            descriptors.append({"dtype": "uint8", "shape": list(arr.shape), "encoding": "jpeg"})
            frames.append(buf.tobytes())
        else:
            if arr.dtype.name not in ALLOWED_DTYPES:
                raise WireError(Fault.BAD_DTYPE, f"dtype {arr.dtype} cannot go on the wire")
            little = arr.dtype.newbyteorder("<")
            if arr.dtype != little:  # a big-endian array (">f4") goes out little-endian
                arr = arr.astype(little)
            descriptors.append({"dtype": arr.dtype.name, "shape": list(arr.shape), "encoding": "raw"})
            frames.append(arr.data.cast("B") if arr.size else b"")
    full = {"schema_version": SCHEMA_VERSION, **header, "parts": descriptors}
    head = json.dumps(full, separators=(",", ":")).encode()
    return [topic_of(topic), head, *frames]


def _decode_part(desc: Any, data: bytes | memoryview) -> np.ndarray:
    if not isinstance(desc, dict):
        raise WireError(Fault.MALFORMED_HEADER, "part descriptor is not an object")
    dtype, shape, encoding = desc.get("dtype"), desc.get("shape"), desc.get("encoding", "raw")
    if not isinstance(dtype, str) or dtype not in ALLOWED_DTYPES:
        raise WireError(Fault.BAD_DTYPE, f"dtype {dtype!r} is not allowed")
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DIMS
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DIM for d in shape)
    ):
        raise WireError(Fault.BAD_SHAPE, f"shape {shape!r} is not a list of at most {MAX_DIMS} sizes")
    if len(data) > MAX_PART_BYTES:
        raise WireError(Fault.OVERSIZE, f"part of {len(data)} bytes exceeds {MAX_PART_BYTES}")
    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if expected > MAX_PART_BYTES:
        raise WireError(Fault.OVERSIZE, f"shape {shape} holds {expected} bytes, more than {MAX_PART_BYTES}")
    if encoding == "jpeg":
        if dtype != "uint8" or len(shape) != 3 or shape[2] != 3:
            raise WireError(Fault.BAD_SHAPE, "a JPEG part must be uint8 HxWx3")
        size = jpeg_size(data)  # before decoding: the image must be what the header declared
        if [size.height, size.width] != shape[:2]:
            raise WireError(
                Fault.BAD_PAYLOAD, f"JPEG part is {size.width}x{size.height}, declared {shape[1]}x{shape[0]}"
            )
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None or list(img.shape) != shape:
            raise WireError(Fault.BAD_PAYLOAD, "JPEG part does not decode to its declared shape")
        return img
    if encoding != "raw":
        raise WireError(Fault.MALFORMED_HEADER, f"unknown encoding {encoding!r}")
    if expected != len(data):
        raise WireError(Fault.BAD_PAYLOAD, f"part has {len(data)} bytes, shape {shape} needs {expected}")
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def decode(
    frames: Sequence[bytes | memoryview | Any],
    kinds: Collection[str] | None = None,
    cameras: Collection[str] | None = None,
) -> Message:
    """Parse and validate one message; raise WireError (never anything else) when it is bad.

    `kinds` and `cameras`, when given, are the only message kinds and camera ids the receiver
    takes: anything else is refused from its header, before a byte of payload is decoded.
    """
    try:
        raw = [f.buffer if hasattr(f, "buffer") else f for f in frames]
    except Exception as exc:  # pragma: no cover - zmq.Frame always has .buffer
        raise WireError(Fault.MALFORMED_FRAMES, str(exc)) from exc
    if len(raw) < 2:
        raise WireError(Fault.MALFORMED_FRAMES, f"expected at least 2 frames, got {len(raw)}")
    try:
        topic = bytes(raw[0]).decode()
    except UnicodeDecodeError as exc:
        raise WireError(Fault.MALFORMED_TOPIC, "topic is not UTF-8") from exc
    if len(raw[1]) > MAX_HEADER_BYTES:
        raise WireError(Fault.OVERSIZE, "header exceeds 1 MiB")
    try:
        header = json.loads(bytes(raw[1]))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: also huge ints
        raise WireError(Fault.MALFORMED_HEADER, "header is not JSON") from exc
    if not isinstance(header, dict):
        raise WireError(Fault.MALFORMED_HEADER, "header is not a JSON object")
    version = header.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:  # not true, not 1.0
        raise WireError(Fault.BAD_VERSION, f"schema_version {version!r}, expected {SCHEMA_VERSION}")
    for key, typ in (("kind", str), ("camera_id", str), ("seq", int), ("ts_ns", int)):
        if not isinstance(header.get(key), typ) or isinstance(header.get(key), bool):
            raise WireError(Fault.MALFORMED_HEADER, f"header field {key!r} missing or not {typ.__name__}")
    if topic != header["camera_id"] + TOPIC_END:
        raise WireError(Fault.MALFORMED_TOPIC, "the topic is not camera_id and its NUL terminator")
    if kinds is not None and header["kind"] not in kinds:
        raise WireError(Fault.UNEXPECTED_KIND, f"a {header['kind']!r} message never travels on this hop")
    if cameras is not None and header["camera_id"] not in cameras:
        raise WireError(Fault.UNKNOWN_CAMERA, f"camera {header['camera_id']!r} is not in the config")
    descs = header.get("parts", [])
    if not isinstance(descs, list) or len(descs) != len(raw) - 2:
        raise WireError(Fault.MALFORMED_HEADER, "parts list does not match the payload frames")
    parts = [_decode_part(d, p) for d, p in zip(descs, raw[2:], strict=True)]
    return Message(topic=header["camera_id"], header=header, parts=parts)
