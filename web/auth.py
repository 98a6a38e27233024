"""Who may call the API: nobody needs a token on loopback without one; otherwise a bearer token.

The write token may do everything, the read token only GET. Tokens come from the config or the
environment (FACESTREAM_WEB_TOKEN, FACESTREAM_WEB_READ_TOKEN, which win). A browser cannot put a
header on <img src>, so GET requests also accept the token as the `facestream_token` cookie
(SameSite=Strict, set by the page); changes always need the header, so a cookie can never be
used to change anything from another site.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from bus.config import WebConfig, is_loopback
from bus.errors import FacestreamError
from web.errors import HttpProblem

ENV_TOKEN = "FACESTREAM_WEB_TOKEN"
ENV_READ_TOKEN = "FACESTREAM_WEB_READ_TOKEN"
COOKIE = "facestream_token"
MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class Tokens:
    write: str | None
    read: str | None

    @property
    def required(self) -> bool:
        return self.write is not None or self.read is not None


def resolve_tokens(config: WebConfig, environ: dict[str, str] | None = None) -> Tokens:
    """The tokens in force; a non-loopback bind without any is refused."""
    env = os.environ if environ is None else environ
    write = env.get(ENV_TOKEN) or config.token
    read = env.get(ENV_READ_TOKEN) or config.read_token
    for value, where in ((write, ENV_TOKEN), (read, ENV_READ_TOKEN)):
        if value is not None and len(value) < MIN_TOKEN_CHARS:
            raise FacestreamError(f"{where}: a token needs at least {MIN_TOKEN_CHARS} characters")
    if write is not None and read is not None and secrets.compare_digest(write, read):
        raise FacestreamError("web.token and web.read_token must differ")
    tokens = Tokens(write, read)
    if not is_loopback(config.host) and not tokens.required:
        raise FacestreamError(
            f"web.host {config.host} is not loopback: set web.token (or {ENV_TOKEN}) so that only "
            "people with the token can see the cameras"
        )
    return tokens


class Denied(HttpProblem):
    """401 or 403."""


def check(tokens: Tokens, presented: str | None, write: bool) -> None:
    """Raise Denied (401 without a valid token, 403 for the read token on a change)."""
    if not tokens.required:
        return
    if presented is None:
        raise Denied(401, "a bearer token is required")
    if tokens.write is not None and secrets.compare_digest(presented.encode(), tokens.write.encode()):
        return
    if tokens.read is not None and secrets.compare_digest(presented.encode(), tokens.read.encode()):
        if write:
            raise Denied(403, "the read-only token cannot change anything")
        return
    raise Denied(401, "invalid token")
