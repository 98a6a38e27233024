"""The overlay's MP4 segments of each camera, as files the console may serve (and no others)."""

from __future__ import annotations

from pathlib import Path

from bus.config import PipelineConfig
from overlay.writer import camera_output, segment_path

MAX_SEGMENTS = 100_000


def segments(config: PipelineConfig, camera_id: str) -> list[Path]:
    """The camera's segment files on disk, oldest first (none without overlay.output)."""
    output = config.overlay.output
    if output is None:
        return []
    base = camera_output(output, camera_id, len(config.cameras))
    found = []
    for other in base.parent.glob(f"{base.stem}.seg*{base.suffix or '.mp4'}"):
        number = other.name[len(base.stem) + len(".seg") : -len(base.suffix or ".mp4")]
        if number.isdigit() and int(number) < MAX_SEGMENTS and other == segment_path(base, int(number)):
            found.append((int(number), other))
    if base.is_file():
        found.append((0, base))
    return [path for _, path in sorted(found) if path.is_file()]


def find(config: PipelineConfig, camera_id: str, name: str) -> Path | None:
    """A listed segment by its file name; anything else (other files, paths) is not found."""
    return next((p for p in segments(config, camera_id) if p.name == name), None)
