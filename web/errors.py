"""An HTTP answer raised from deep inside a request (a refused token, a bad upload, a dead upstream)."""

from __future__ import annotations


class HttpProblem(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
