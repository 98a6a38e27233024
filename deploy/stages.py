"""Which stage classes exist and how many processes of each a config asks for."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bus.config import PipelineConfig

if TYPE_CHECKING:
    from bus.stage import Stage

STAGE_CLASSES = {
    "capture": ("capture.stage", "CaptureStage"),
    "detect": ("detect.stage", "DetectStage"),
    "embed": ("embed.stage", "EmbedStage"),
    "match": ("match.stage", "MatchStage"),
    "overlay": ("overlay.stage", "OverlayStage"),
    "events": ("events.stage", "EventsStage"),
    "web": ("web.stage", "WebStage"),
}
# Downstream first, so every consumer is listening before the cameras start.
START_ORDER = ("web", "events", "overlay", "match", "embed", "detect", "capture")


def stage_class(name: str) -> type[Stage]:
    module, cls = STAGE_CLASSES[name]
    found: type[Stage] = getattr(importlib.import_module(module), cls)
    return found


def process_count(config: PipelineConfig, name: str) -> int:
    return {
        "capture": len(config.cameras),
        "detect": config.detect.workers,
        "embed": config.embed.workers,
        "events": int(config.events is not None),  # only with an events (or web) section
        "web": int(config.web is not None),
    }.get(name, 1)
