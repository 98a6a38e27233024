"""Typed records for every hop; each validates shapes and dtypes and says clearly what is wrong.

`to_frames()` builds the wire message (bus.wire), `record_from_message()` parses one back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from bus.errors import Fault, WireError
from bus.wire import Message, encode

Stamps = dict[str, int]
_INT64 = 1 << 63  # seq, ts_ns and stamps are int64 for clients in any language


def _check_image(image: np.ndarray, what: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise WireError(Fault.BAD_DTYPE, f"{what} must be a uint8 ndarray")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise WireError(Fault.BAD_SHAPE, f"{what} must be HxWx3 (BGR), got {image.shape}")


def _finite(values: Any, what: str) -> None:
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        raise WireError(Fault.BAD_FIELD, f"{what} must hold finite numbers")


@dataclass
class Face:
    """One face in one frame; later stages fill the identity fields."""

    box: tuple[float, float, float, float]  # x, y, w, h in frame pixels
    score: float
    landmarks: np.ndarray | None = None  # (5, 2) float32: eyes, nose, mouth corners (frame px)
    track_id: int | None = None
    crop_index: int | None = None  # index of this face's crop/vector in the message parts
    crop_origin: tuple[int, int] = (0, 0)  # frame coordinates of the crop's top-left pixel
    quality: float | None = None
    name: str | None = None
    similarity: float | None = None  # cosine similarity to the best gallery match
    # True: this frame's box comes from the face's own track (unchanged pixels, or followed by
    # template matching), not from a detection run on this frame; viewers draw it marked.
    tracked: bool = False

    def __post_init__(self) -> None:
        if len(self.box) != 4:
            raise WireError(Fault.BAD_FIELD, f"box must have 4 numbers, got {self.box!r}")
        _finite(self.box, "box")
        _finite([self.score], "score")
        if self.box[2] < 0 or self.box[3] < 0:
            raise WireError(Fault.BAD_FIELD, f"box width/height must be >= 0, got {self.box!r}")
        if self.landmarks is not None:
            lm = np.asarray(self.landmarks, dtype=np.float32)
            if lm.shape != (5, 2) or not np.isfinite(lm).all():
                raise WireError(Fault.BAD_FIELD, f"landmarks must be 5x2 finite, got {lm.shape}")
            self.landmarks = lm

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "landmarks": None
            if self.landmarks is None
            else [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks],
            "track_id": self.track_id,
            "crop_index": self.crop_index,
            "crop_origin": list(self.crop_origin),
            "quality": self.quality,
            "name": self.name,
            "similarity": None if self.similarity is None else round(float(self.similarity), 5),
            "tracked": bool(self.tracked),
        }
        return out

    @classmethod
    def from_json(cls, data: Any) -> Face:
        if not isinstance(data, dict):
            raise WireError(Fault.BAD_FIELD, "face entry is not an object")
        try:
            box = tuple(float(v) for v in data["box"])
            lm = data.get("landmarks")
            origin = data.get("crop_origin", [0, 0])
            return cls(
                box=box,  # type: ignore[arg-type]
                score=float(data["score"]),
                landmarks=None if lm is None else np.asarray(lm, dtype=np.float32),
                track_id=_opt_int(data.get("track_id")),
                crop_index=_opt_int(data.get("crop_index")),
                crop_origin=(int(origin[0]), int(origin[1])),
                quality=None if data.get("quality") is None else float(data["quality"]),
                name=None if data.get("name") is None else str(data["name"]),
                similarity=None if data.get("similarity") is None else float(data["similarity"]),
                tracked=_bool(data.get("tracked", False)),
            )
        except WireError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise WireError(Fault.BAD_FIELD, f"face entry is malformed: {exc}") from exc


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise WireError(Fault.BAD_FIELD, f"expected true or false, got {value!r}")
    return value


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireError(Fault.BAD_FIELD, f"expected an integer, got {value!r}")
    return value


@dataclass
class _Record:
    KIND: ClassVar[str] = ""
    camera_id: str
    seq: int
    ts_ns: int  # capture time, time.time_ns() on the capturing host
    stamps: Stamps = field(default_factory=dict)  # stage name -> time_ns when it finished

    def __post_init__(self) -> None:
        if not isinstance(self.camera_id, str) or not self.camera_id:
            raise WireError(Fault.BAD_FIELD, "camera_id must be a non-empty string")
        if self.seq < 0:
            raise WireError(Fault.BAD_FIELD, f"seq must be >= 0, got {self.seq}")
        if self.seq >= _INT64 or not -_INT64 <= self.ts_ns < _INT64:
            raise WireError(Fault.BAD_FIELD, "seq and ts_ns must fit in a signed 64-bit integer")

    def _header(self, **extra: Any) -> dict[str, Any]:
        return {
            "kind": self.KIND,
            "camera_id": self.camera_id,
            "seq": int(self.seq),
            "ts_ns": int(self.ts_ns),
            "stamps": dict(self.stamps),
            **extra,
        }


def _base_fields(msg: Message) -> dict[str, Any]:
    stamps = msg.header.get("stamps", {})
    if not isinstance(stamps, dict) or not all(
        isinstance(v, int) and -_INT64 <= v < _INT64 for v in stamps.values()
    ):
        raise WireError(Fault.BAD_FIELD, "stamps must map stage names to integers")
    return {
        "camera_id": msg.header["camera_id"],
        "seq": msg.header["seq"],
        "ts_ns": msg.header["ts_ns"],
        "stamps": stamps,
    }


def _frame_size(msg: Message) -> tuple[int, int]:
    size = msg.header.get("frame_size")
    if not isinstance(size, list) or len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise WireError(Fault.BAD_FIELD, "frame_size must be [width, height]")
    return int(size[0]), int(size[1])


def _faces(msg: Message) -> list[Face]:
    faces = msg.header.get("faces")
    if not isinstance(faces, list):
        raise WireError(Fault.BAD_FIELD, "faces must be a list")
    return [Face.from_json(f) for f in faces]


@dataclass
class Frame(_Record):
    """A captured BGR image."""

    KIND: ClassVar[str] = "frame"
    image: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 3), np.uint8))
    fps: float = 0.0  # the source's nominal frame rate, 0 when unknown (webcams, streams)

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_image(self.image, "frame image")
        _finite([self.fps], "fps")

    def to_frames(self, jpeg_quality: int | None = None) -> list[bytes | memoryview]:
        return encode(self.camera_id, self._header(fps=self.fps), [self.image], jpeg_quality)

    @classmethod
    def from_message(cls, msg: Message) -> Frame:
        if len(msg.parts) != 1:
            raise WireError(Fault.BAD_PAYLOAD, "a frame carries exactly one image part")
        fps = msg.header.get("fps", 0.0)
        if isinstance(fps, bool) or not isinstance(fps, int | float):
            raise WireError(Fault.BAD_FIELD, "fps must be a number")
        return cls(**_base_fields(msg), image=msg.parts[0], fps=float(fps))


@dataclass
class EndOfStream(_Record):
    """The camera stopped for good; `seq` is the last frame's sequence number."""

    KIND: ClassVar[str] = "eos"
    reason: str = "end of file"

    def to_frames(self) -> list[bytes | memoryview]:
        return encode(self.camera_id, self._header(reason=self.reason))

    @classmethod
    def from_message(cls, msg: Message) -> EndOfStream:
        return cls(**_base_fields(msg), reason=str(msg.header.get("reason", "")))


@dataclass
class FaceCrops(_Record):
    """detect -> embed: the faces of one frame, with a crop for each face that needs embedding."""

    KIND: ClassVar[str] = "faces"
    frame_size: tuple[int, int] = (1, 1)  # width, height
    faces: list[Face] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)
    after: int | None = None  # seq of the frame of this camera the same detect worker sent before

    def __post_init__(self) -> None:
        super().__post_init__()
        for crop in self.crops:
            _check_image(crop, "face crop")
        _check_indices(self.faces, len(self.crops), "crop")
        _check_after(self.after, self.seq)

    def to_frames(self) -> list[bytes | memoryview]:
        header = self._header(
            frame_size=list(self.frame_size), faces=[f.to_json() for f in self.faces], **_after(self.after)
        )
        return encode(self.camera_id, header, self.crops)

    @classmethod
    def from_message(cls, msg: Message) -> FaceCrops:
        return cls(
            **_base_fields(msg),
            frame_size=_frame_size(msg),
            faces=_faces(msg),
            crops=list(msg.parts),
            after=_opt_int(msg.header.get("after")),
        )


def _check_after(after: int | None, seq: int) -> None:
    if after is not None and not 0 <= after < seq:
        raise WireError(Fault.BAD_FIELD, f"after must be an earlier seq (0 <= after < {seq}), got {after}")


def _after(after: int | None) -> dict[str, int]:
    return {} if after is None else {"after": int(after)}


def _check_vectors(faces: list[Face], v: np.ndarray) -> None:
    if not isinstance(v, np.ndarray) or v.dtype != np.float32 or v.ndim != 2:
        raise WireError(Fault.BAD_PAYLOAD, "vectors must be a float32 (n, dim) array")
    if not np.isfinite(v).all():
        raise WireError(Fault.BAD_PAYLOAD, "vectors hold NaN or infinity")
    _check_indices(faces, v.shape[0], "vector")


def _check_indices(faces: list[Face], count: int, what: str) -> None:
    used = [f.crop_index for f in faces if f.crop_index is not None]
    if sorted(used) != list(range(count)):
        raise WireError(Fault.BAD_FIELD, f"faces' crop_index values must be 0..{count - 1}, one {what} each")


@dataclass
class Embeddings(_Record):
    """embed -> match: one L2-normalised vector per embedded face (row = face.crop_index)."""

    KIND: ClassVar[str] = "embeddings"
    frame_size: tuple[int, int] = (1, 1)
    faces: list[Face] = field(default_factory=list)
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    model_id: str = ""
    after: int | None = None  # as in FaceCrops: the frame this one follows, for match's ordering

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_vectors(self.faces, self.vectors)
        _check_after(self.after, self.seq)

    def to_frames(self) -> list[bytes | memoryview]:
        header = self._header(
            frame_size=list(self.frame_size),
            faces=[f.to_json() for f in self.faces],
            model_id=self.model_id,
            **_after(self.after),
        )
        return encode(self.camera_id, header, [self.vectors])

    @classmethod
    def from_message(cls, msg: Message) -> Embeddings:
        if len(msg.parts) != 1:
            raise WireError(Fault.BAD_PAYLOAD, "embeddings carry exactly one vectors part")
        return cls(
            **_base_fields(msg),
            frame_size=_frame_size(msg),
            faces=_faces(msg),
            vectors=msg.parts[0],
            model_id=str(msg.header.get("model_id", "")),
            after=_opt_int(msg.header.get("after")),
        )


@dataclass
class MatchResult(_Record):
    """match -> overlay/events: every face with its name ("Unknown" below threshold)."""

    KIND: ClassVar[str] = "result"
    frame_size: tuple[int, int] = (1, 1)
    faces: list[Face] = field(default_factory=list)
    model_id: str = ""
    threshold: float = 0.0
    # Results the match process has published for this camera, this one included (1, 2, ...):
    # a subscriber that sees a gap knows how many results the PUB hop dropped. None: not counted.
    published: int | None = None
    # Optional: the embeddings that were matched (row = face.crop_index), for consumers that keep
    # them (events stores those of Unknown faces); None when the sender leaves them out.
    vectors: np.ndarray | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.vectors is not None:
            _check_vectors(self.faces, self.vectors)

    def to_frames(self) -> list[bytes | memoryview]:
        extra = {} if self.published is None else {"published": int(self.published)}
        header = self._header(
            frame_size=list(self.frame_size),
            faces=[f.to_json() for f in self.faces],
            model_id=self.model_id,
            threshold=self.threshold,
            **extra,
        )
        return encode(self.camera_id, header, [] if self.vectors is None else [self.vectors])

    @classmethod
    def from_message(cls, msg: Message) -> MatchResult:
        threshold = msg.header.get("threshold", 0.0)
        if not isinstance(threshold, int | float):
            raise WireError(Fault.BAD_FIELD, "threshold must be a number")
        if len(msg.parts) > 1:
            raise WireError(Fault.BAD_PAYLOAD, "a result carries at most one vectors part")
        return cls(
            **_base_fields(msg),
            frame_size=_frame_size(msg),
            faces=_faces(msg),
            model_id=str(msg.header.get("model_id", "")),
            threshold=float(threshold),
            published=_opt_int(msg.header.get("published")),
            vectors=msg.parts[0] if msg.parts else None,
        )


Record = Frame | EndOfStream | FaceCrops | Embeddings | MatchResult
_KINDS: dict[str, Any] = {cls.KIND: cls for cls in (Frame, EndOfStream, FaceCrops, Embeddings, MatchResult)}


def record_from_message(msg: Message) -> Record:
    """Turn a decoded message into its typed record; raise WireError for unknown kinds."""
    cls = _KINDS.get(msg.kind)
    if cls is None:
        raise WireError(Fault.UNKNOWN_KIND, f"message kind {msg.kind!r} is unknown")
    try:
        record: Record = cls.from_message(msg)
    except WireError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:  # e.g. a 400-digit "score"
        raise WireError(Fault.BAD_FIELD, f"a {msg.kind!r} field is out of range: {exc}") from exc
    return record
