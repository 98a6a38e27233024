"""Checks before any process starts, so that bad input fails at once with one clear line."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from bus.config import PipelineConfig
from bus.errors import FacestreamError

URL_SCHEMES = ("rtsp", "rtsps", "http", "https")


def check_source(source: str) -> None:
    if source.isdigit():
        return
    scheme = urlparse(source).scheme.lower()
    if "://" in source:
        if scheme not in URL_SCHEMES:
            raise FacestreamError(
                f"unknown camera source {source!r}: use a file path, a webcam index or an rtsp/http URL"
            )
        return
    path = Path(source)
    if not path.exists():
        where = (
            ""
            if path.is_absolute()
            else f" (looked for {path.absolute()}: relative paths start at the current directory)"
        )
        raise FacestreamError(f"video file {path} not found{where}")
    if not path.is_file():
        raise FacestreamError(f"video source {path} is not a file")


def preflight(config: PipelineConfig) -> None:
    """Camera sources look usable, the gallery exists and fits the model (which gets cached)."""
    from embed.model import EmbeddingModel
    from match.gallery import Gallery

    for camera in config.cameras:
        check_source(camera.source)
    model = EmbeddingModel.load(config.embed.model, cache_dir=config.embed.cache_dir)
    Gallery.load(
        config.match.gallery, expect_model_id=model.card.model_id, expect_dim=model.card.embedding_dim
    )
