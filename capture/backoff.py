"""How long to wait before each attempt to reopen a lost camera."""

from __future__ import annotations

import itertools
from collections.abc import Iterator


def retry_delays(first_s: float, max_s: float, tries: int | None) -> Iterator[float]:
    """first_s, then twice as long each time, never more than max_s; `tries` delays, or forever."""
    delay = first_s
    for _ in itertools.count() if tries is None else range(tries):
        yield min(delay, max_s)
        delay = min(delay * 2, max_s)
