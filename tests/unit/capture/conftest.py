"""Fixtures for the capture tests (shared with the overlay tests in tests/stage_thread.py)."""

from __future__ import annotations

from tests.stage_thread import clip

__all__ = ["clip"]
