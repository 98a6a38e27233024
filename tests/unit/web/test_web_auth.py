"""Tokens: where they come from, when they are required, what each may do."""

from __future__ import annotations

import pytest

from bus.config import WebConfig
from bus.errors import FacestreamError
from web.auth import ENV_READ_TOKEN, ENV_TOKEN, Denied, Tokens, check, resolve_tokens

W, R = "w" * 20, "r" * 20


def test_loopback_needs_no_token_any_other_address_does() -> None:
    assert not resolve_tokens(WebConfig(), {}).required
    with pytest.raises(FacestreamError, match="not loopback"):
        resolve_tokens(WebConfig(host="0.0.0.0"), {})
    assert resolve_tokens(WebConfig(host="0.0.0.0"), {ENV_TOKEN: W}).write == W


def test_the_environment_wins_and_tokens_are_checked() -> None:
    tokens = resolve_tokens(WebConfig(token="c" * 20), {ENV_TOKEN: W, ENV_READ_TOKEN: R})
    assert tokens == Tokens(W, R)
    with pytest.raises(FacestreamError, match="16 characters"):
        resolve_tokens(WebConfig(), {ENV_TOKEN: "short"})
    with pytest.raises(FacestreamError, match="differ"):
        resolve_tokens(WebConfig(token=W, read_token=W), {})


def test_check() -> None:
    check(Tokens(None, None), None, write=True)  # loopback without tokens: open
    tokens = Tokens(W, R)
    check(tokens, W, write=True)
    check(tokens, R, write=False)
    for presented, write, status in ((None, False, 401), ("x" * 20, False, 401), (R, True, 403)):
        with pytest.raises(Denied) as err:
            check(tokens, presented, write)
        assert err.value.status == status
    read_only = Tokens(None, R)  # nobody may change anything
    with pytest.raises(Denied):
        check(read_only, R, write=True)
