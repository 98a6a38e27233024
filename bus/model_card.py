"""What an embedding model needs to be used, stored as ONNX metadata (`facestream.*` keys).

The trainer writes it, embed reads it: no stage hard-codes input size, colours or threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from bus.errors import FacestreamError

PREFIX = "facestream."


@dataclass(frozen=True)
class ModelCard:
    model_id: str  # stable id; galleries remember it and refuse vectors of another model
    input_width: int
    input_height: int
    embedding_dim: int
    color_order: Literal["RGB", "BGR", "GRAY"] = "RGB"
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # subtracted from 0..255 pixels
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)  # then divided by this
    metric: Literal["cosine"] = "cosine"
    threshold: float = 0.5  # cosine similarity at or above which two faces are the same person
    alignment: Literal["5point", "box"] = "5point"
    source: str = ""

    def to_props(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            text = ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
            out[PREFIX + key] = text
        return out

    @classmethod
    def from_props(cls, props: dict[str, str], where: str = "model") -> ModelCard:
        def get(key: str) -> str:
            if PREFIX + key not in props:
                raise FacestreamError(
                    f"{where}: ONNX metadata lacks '{PREFIX}{key}' (export it with facestream export)"
                )
            return props[PREFIX + key]

        def triple(key: str) -> tuple[float, float, float]:
            vals = [float(v) for v in get(key).split(",")]
            if len(vals) == 1:
                vals = vals * 3
            if len(vals) != 3:
                raise FacestreamError(f"{where}: '{PREFIX}{key}' must hold 1 or 3 numbers")
            return (vals[0], vals[1], vals[2])

        try:
            card = cls(
                model_id=get("model_id"),
                input_width=int(get("input_width")),
                input_height=int(get("input_height")),
                embedding_dim=int(get("embedding_dim")),
                color_order=get("color_order"),  # type: ignore[arg-type]
                layout=get("layout"),  # type: ignore[arg-type]
                mean=triple("mean"),
                std=triple("std"),
                metric=get("metric"),  # type: ignore[arg-type]
                threshold=float(get("threshold")),
                alignment=get("alignment"),  # type: ignore[arg-type]
                source=props.get(PREFIX + "source", ""),
            )
        except ValueError as exc:
            raise FacestreamError(f"{where}: bad facestream metadata ({exc})") from exc
        card.validate(where)
        return card

    def validate(self, where: str = "model") -> None:
        if self.color_order not in ("RGB", "BGR", "GRAY") or self.layout not in ("NCHW", "NHWC"):
            raise FacestreamError(f"{where}: color_order/layout not understood")
        if min(self.input_width, self.input_height, self.embedding_dim) <= 0:
            raise FacestreamError(f"{where}: sizes in the metadata must be positive")
        if any(s == 0 for s in self.std):
            raise FacestreamError(f"{where}: std must not be zero")
        if self.alignment not in ("5point", "box") or self.metric != "cosine":
            raise FacestreamError(f"{where}: alignment/metric not understood")
