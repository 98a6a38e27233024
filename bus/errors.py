"""Errors with one-line messages meant for users (the CLI prints them without a traceback)."""

from __future__ import annotations


class FacestreamError(Exception):
    """A problem the user can fix: bad input, missing file, wrong config."""


class WireError(ValueError):
    """A message that does not follow docs/wire.md; `kind` names the fault for counting."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
