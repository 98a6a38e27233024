"""Shared wire format, typed records, sockets and config base: the only code stages share."""

from __future__ import annotations

SCHEMA_VERSION = 1
