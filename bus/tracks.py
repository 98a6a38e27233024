"""The face-track contract shared by detect (makes track ids), match (joins them) and clients.

A track id is `n * TRACK_ID_STRIDE + worker`: unique across the detect workers of one pipeline
without any coordination, and match can tell which worker a track comes from (tracks of one
worker never describe the same face twice at once, tracks of two workers may). The stride is
therefore also the most detect workers a pipeline may have; the config refuses more.
"""

from __future__ import annotations

from bus.errors import FacestreamError

TRACK_ID_STRIDE = 64
MAX_DETECT_WORKERS = TRACK_ID_STRIDE


def make_track_id(serial: int, worker: int) -> int:
    """The id of a worker's `serial`-th track."""
    check_worker(worker)
    if serial < 0:
        raise ValueError(f"a track serial must be >= 0, got {serial}")
    return serial * TRACK_ID_STRIDE + worker


def worker_of(track_id: int) -> int:
    """The detect worker that made a track id."""
    return track_id % TRACK_ID_STRIDE


def check_worker(worker: int, workers: int = MAX_DETECT_WORKERS) -> None:
    """A detect worker index must be one of the configured workers and fit in a track id."""
    if not 0 <= worker < min(workers, TRACK_ID_STRIDE):
        raise FacestreamError(
            f"detect worker index {worker} is out of range: the config has {workers} detect worker(s) "
            f"and track ids leave room for {TRACK_ID_STRIDE}"
        )
