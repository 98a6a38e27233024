"""MP4 output, one file per camera; the folder is checked up front so a bad path fails at start."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from bus.errors import FacestreamError

FALLBACK_FPS = 25.0


def camera_output(path: Path, camera_id: str, n_cameras: int) -> Path:
    """`out.mp4` for one camera; `out-<camera_id>.mp4` when there are several."""
    if n_cameras <= 1:
        return path
    suffix = path.suffix or ".mp4"
    return path.with_name(f"{path.stem}-{camera_id}{suffix}")


def check_writable(path: Path, what: str = "output") -> None:
    """Create the parent folder if needed; raise a one-line error if it cannot be written."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise FacestreamError(f"cannot write {what} {path}: {folder} is not a folder") from exc
    except OSError as exc:
        raise FacestreamError(f"cannot write {what} {path}: cannot create {folder} ({exc.strerror})") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FacestreamError(f"cannot write {what} {path}: folder {folder} is not writable")
    if path.is_dir():
        raise FacestreamError(f"cannot write {what} {path}: it is a folder")


class Mp4Writer:
    """cv2.VideoWriter ('mp4v'), opened on the first frame (its size and the stream's fps)."""

    def __init__(self, path: Path) -> None:
        check_writable(path, "video")
        self.path = path
        self.frames = 0
        self.fps = 0.0
        self.size: tuple[int, int] | None = None
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray, fps: float) -> None:
        h, w = frame.shape[:2]
        if self._writer is None:
            self.fps = fps if fps > 0 else FALLBACK_FPS
            self.size = (w, h)
            fourcc = cv2.VideoWriter.fourcc(*"mp4v")
            writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, self.size)
            if not writer.isOpened():
                raise FacestreamError(f"cannot write video {self.path}: OpenCV could not open an mp4v writer")
            self._writer = writer
        if (w, h) != self.size:
            # A reopened camera may come back at another resolution; the file keeps its first size.
            assert self.size is not None
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
