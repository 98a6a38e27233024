"""MP4 output, one file per camera, rolled over into segments; the folder is checked at start.

Video is H.264 (libx264, shipped inside PyAV's wheels) in fragmented MP4, so browsers play it
(OpenCV's mp4v/FMP4 codec plays nowhere but in desktop players) and a file is playable while it
is being written and after a crash, up to its last fragment (one every KEYFRAME_S of video).

Segment 0 is the configured path (`out.mp4`), segment N is `out.segN.mp4`: rolling over keeps
files a size that is easy to list, play and delete.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from bus.errors import FacestreamError

FALLBACK_FPS = 25.0
KEYFRAME_S = 2.0  # a keyframe, and so a new MP4 fragment, every this many seconds of video
# zerolatency: no frame waits in the encoder, so a fragment reaches the file when its time is up.
ENCODER = {"preset": "veryfast", "tune": "zerolatency", "crf": "23", "threads": "1"}
FRAGMENTED = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}


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


def segment_path(path: Path, index: int) -> Path:
    """`out.mp4` for segment 0, `out.seg<index>.mp4` after it."""
    return path if index == 0 else path.with_name(f"{path.stem}.seg{index}{path.suffix or '.mp4'}")


def next_free_segment(path: Path) -> int:
    """One past the highest segment of `path` on disk (0 if there is none): nothing is overwritten."""
    taken = [0] if path.exists() else []
    prefix, suffix = f"{path.stem}.seg", path.suffix or ".mp4"
    for other in path.parent.glob(f"{path.stem}.seg*{suffix}"):
        number = other.name[len(prefix) : -len(suffix)]
        if number.isdigit():
            taken.append(int(number))
    return max(taken) + 1 if taken else 0


class _H264File:
    """One fragmented H.264 MP4 file written with PyAV."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        try:
            self.container = av.open(str(path), "w", format="mp4", options=FRAGMENTED)
        except (OSError, av.FFmpegError) as exc:
            raise FacestreamError(f"cannot write video {path}: {exc}") from exc
        rate = Fraction(round(fps * 1000), 1000)
        stream = self.container.add_stream("libx264", rate=rate, options=ENCODER)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = max(1, round(fps * KEYFRAME_S))
        self.stream = stream

    def write(self, frame: np.ndarray) -> None:
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")
        for packet in self.stream.encode(picture):
            self.container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()


def even_size(width: int, height: int) -> tuple[int, int]:
    """H.264 in 4:2:0 needs even sides: an odd one loses its last pixel."""
    return max(2, width - width % 2), max(2, height - height % 2)


class Mp4Writer:
    """H.264 MP4 writer, opened on the first frame (its size and the stream's fps).

    With `segment_s`, the file is closed after that many seconds of video (frames / fps) and the
    next segment opened; `paths` lists every segment written, oldest first.
    """

    def __init__(self, path: Path, segment_s: float | None = None, first_segment: int = 0) -> None:
        check_writable(path, "video")
        self.base = path
        self.segment_s = segment_s
        self.index = first_segment
        self.paths: list[Path] = []
        self.frames = 0  # in all segments
        self.segment_frames = 0
        self.fps = 0.0
        self.size: tuple[int, int] | None = None
        self._writer: _H264File | None = None

    def write(self, frame: np.ndarray, fps: float) -> None:
        h, w = frame.shape[:2]
        if self._writer is not None and self._segment_full():
            self.close()
            self.index += 1
        if self._writer is None:
            self._open(self.fps or fps, (w, h))  # later segments keep the first segment's fps
        if (w, h) != self.size:
            # A reopened camera may come back at another resolution; the file keeps its first size.
            assert self.size is not None
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        assert self._writer is not None
        self._writer.write(frame)
        self.frames += 1
        self.segment_frames += 1

    @property
    def path(self) -> Path:
        """The segment being written (or to be written next)."""
        return segment_path(self.base, self.index)

    def _segment_full(self) -> bool:
        return self.segment_s is not None and self.segment_frames >= max(1, round(self.segment_s * self.fps))

    def _open(self, fps: float, size: tuple[int, int]) -> None:
        self.fps = fps if fps > 0 else FALLBACK_FPS
        self.size = self.size or even_size(*size)  # every segment keeps the first size
        self._writer = _H264File(self.path, self.fps, self.size)
        self.segment_frames = 0
        self.paths.append(self.path)

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
