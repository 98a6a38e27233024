"""results.jsonl: one JSON line per frame shown, exactly what the viewer saw on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from overlay.join import Joined
from overlay.writer import check_writable


class ResultsLog:
    """Append-only JSON lines; a restarted overlay appends instead of truncating."""

    def __init__(self, path: Path, append: bool) -> None:
        check_writable(path, "results log")
        self.path = path
        self._file: IO[str] = path.open("a" if append else "w", buffering=1)

    def write(self, camera_id: str, joined: Joined) -> None:
        frame, result = joined.frame, joined.result
        latency = joined.latency_ms
        entry = {
            "camera_id": camera_id,
            "seq": frame.seq,
            "ts_ns": frame.ts_ns,
            "result": result is not None,  # False: shown without its result (and without boxes)
            "latency_ms": None if latency is None else round(latency, 3),
            "faces": []
            if result is None
            else [
                {
                    "box": [round(float(v), 1) for v in f.box],
                    "name": f.name,
                    "similarity": None if f.similarity is None else round(float(f.similarity), 4),
                    "track_id": f.track_id,
                    "tracked": f.tracked,
                }
                for f in result.faces
            ],
        }
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
