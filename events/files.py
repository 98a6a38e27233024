"""Snapshot JPEGs beside the database: written atomically, named by the sighting, never by input.

Paths in the database are relative to the data folder, so the folder can move; a path that
would leave it (a tampered row) is refused rather than followed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

SNAPSHOTS = "snapshots"


class SnapshotFiles:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def relative_path(self, uid: str, camera_id: str, first_seen_ms: int) -> str:
        """snapshots/<camera>/<YYYY-MM-DD>/<uid>.jpg (camera ids and uids are safe file names)."""
        day = datetime.fromtimestamp(first_seen_ms / 1000, UTC).strftime("%Y-%m-%d")
        return f"{SNAPSHOTS}/{camera_id}/{day}/{uid}.jpg"

    def resolve(self, relative: str | None) -> Path | None:
        """The file of a stored path, or None when there is none or it points outside the folder."""
        if not relative:
            return None
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root / SNAPSHOTS):
            return None
        return path

    def write(self, relative: str, jpeg: bytes) -> int:
        """Replace the file atomically (temp + rename); returns its size."""
        path = self.resolve(relative)
        if path is None:
            raise ValueError(f"snapshot path {relative!r} is outside {self.root}")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(jpeg)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return len(jpeg)

    def remove(self, relative: str | None) -> None:
        path = self.resolve(relative)
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()
