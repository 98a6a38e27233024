"""Fixtures for the overlay tests (shared with the capture tests in tests/stage_thread.py)."""

from __future__ import annotations

from tests.stage_thread import clip

__all__ = ["clip"]
