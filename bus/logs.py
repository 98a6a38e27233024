"""One logging format for every process; services log, never print.

Libraries written in C (OpenCV's `[ WARN:0@...]` lines, FFmpeg, libjpeg's "Corrupt JPEG data",
TensorFlow's start-up chatter) write straight to file descriptor 2, past Python's logging. With
`native=True` those lines become DEBUG records of `facestream.native` instead (shown with
FACESTREAM_LOG=DEBUG), so a user sees facestream's own one-line messages and nothing else.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import IO

from bus.topology import ENV_LOG

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers of libraries that say too much at INFO (faiss names the AVX2 module it could not load).
_TOO_CHATTY = ("faiss", "faiss.loader")


def setup_logging(level: str | None = None, native: bool = False) -> None:
    if native:
        capture_native_stderr()
    logging.basicConfig(
        level=(level or os.environ.get(ENV_LOG, "INFO")).upper(),
        format=_FORMAT,
        stream=sys.stderr,
    )
    for name in _TOO_CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)


def _pump(stream: IO[bytes]) -> None:
    log = logging.getLogger("facestream.native")
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip()
        if line:
            log.debug("%s", line)


def capture_native_stderr() -> bool:
    """Point fd 2 at a pipe read into DEBUG records; Python's own stderr (logging, tracebacks)
    keeps the original destination. False when it was done already or is not possible."""
    if getattr(sys.stderr, "facestream_native", False):
        return False
    try:
        if sys.stderr.fileno() != 2:
            return False  # Python's stderr was pointed elsewhere (a caller redirected it): leave fd 2 alone
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation: a StringIO
        return False
    try:
        sys.stderr.flush()
        original = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, ValueError):
        return False
    os.dup2(write_end, 2)
    os.close(write_end)
    stream = open(original, "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
    stream.facestream_native = True  # type: ignore[attr-defined]
    sys.stderr = stream
    reader = open(read_end, "rb", buffering=0)  # noqa: SIM115
    threading.Thread(target=_pump, args=(reader,), daemon=True, name="native-stderr").start()
    return True
