"""Where a camera is, kept in a small file so that a restarted capture process carries on.

After a crash the supervisor starts the camera again; it then continues its frame numbering (so
that downstream joins by (camera, seq) never see a number twice) and, for a file, its position
in the file. The record is rewritten in place after every frame: one pwrite, no fsync, because
it only has to survive the process (kill -9), not the machine.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from bus.topology import ENV_STATE_DIR

_RECORD_BYTES = 48

log = logging.getLogger("facestream.capture.position")


@dataclass(frozen=True)
class Position:
    next_seq: int  # the seq the next frame gets
    file_frame: int  # frames of the file's current pass already read (0 for live sources)


class PositionFile:
    """`<state dir>/capture-<index>.state`; without a state dir nothing is kept."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None

    @classmethod
    def for_camera(cls, index: int) -> PositionFile:
        folder = os.environ.get(ENV_STATE_DIR)
        return cls(Path(folder) / f"capture-{index}.state" if folder else None)

    def load(self) -> Position | None:
        if self.path is None:
            return None
        try:
            fields = self.path.read_text().split()
            seq, frame = int(fields[0]), int(fields[1])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, IndexError) as exc:
            log.warning("ignoring unreadable camera position %s (%s)", self.path, exc)
            return None
        if seq < 0 or frame < 0:
            return None
        return Position(seq, frame)

    def save(self, position: Position) -> None:
        if self.path is None:
            return
        record = f"{position.next_seq} {position.file_frame}\n".ljust(_RECORD_BYTES).encode()
        try:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.pwrite(self._fd, record, 0)
        except OSError as exc:
            log.warning("cannot keep the camera position in %s (%s); a restart starts over", self.path, exc)
            self.path = None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
