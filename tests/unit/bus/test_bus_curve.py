"""CURVE on real tcp sockets with keys from `facestream keys`: the right client gets through, a
client with a wrong server key, without CURVE, or with a key not in authorized_clients does not."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
import zmq.auth

from bus.config import BusConfig, CurveConfig
from bus.errors import FacestreamError
from bus.sockets import make_socket
from deploy.keys import make_keys

WAIT_MS = 1500  # a refused handshake never delivers; the accepted one takes a few ms


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    make_keys(folder, "client")
    make_keys(folder, "intruder")  # a real key pair, then taken out of the authorized list
    (folder / "authorized_clients" / "intruder.key").unlink()
    return folder


@pytest.fixture(scope="module")
def other_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("other")
    make_keys(folder, "client")  # another deployment: its client knows another server key
    return folder


def _curve(keys: Path, client: str = "client", authorized: bool = True, **changes: Path) -> BusConfig:
    fields = {
        "server_secret": keys / "server.key_secret",
        "server_public": keys / "server.key",
        "client_secret": keys / f"{client}.key_secret",
        "client_public": keys / f"{client}.key",
        "authorized_clients": keys / "authorized_clients" if authorized else None,
        **changes,
    }
    return BusConfig(curve=CurveConfig.model_validate(fields))


def _server(ctx: zmq.Context[Any], bus: BusConfig) -> tuple[zmq.Socket[Any], str]:
    pull = make_socket(ctx, zmq.PULL, bus, bind=["tcp://127.0.0.1:*"])
    return pull, pull.getsockopt_string(zmq.LAST_ENDPOINT)


def _delivered(server: zmq.Socket[Any], client: zmq.Socket[Any], wait_ms: int = WAIT_MS) -> bool:
    # Our sockets queue only on connections that are up (IMMEDIATE): wait for the handshake.
    if not client.poll(wait_ms, zmq.POLLOUT):
        return False
    try:
        client.send_multipart([b"cam0", b"hello"], zmq.NOBLOCK)
    except zmq.Again:  # the refused handshake dropped the pipe between poll and send
        return False
    return bool(server.poll(wait_ms)) and server.recv_multipart() == [b"cam0", b"hello"]


def _raw_client(
    ctx: zmq.Context[Any], addr: str, keys: Path | None, client: str = "client"
) -> zmq.Socket[Any]:
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        public, secret = zmq.auth.load_certificate(str(keys / f"{client}.key_secret"))
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_serverkey = zmq.auth.load_certificate(str(keys / "server.key"))[0]
    sock.connect(addr)
    return sock


def test_authorized_client_gets_through(keys: Path) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        server, addr = _server(ctx, _curve(keys))
        client = make_socket(ctx, zmq.PUSH, _curve(keys), connect=[addr])
        assert _delivered(server, client, 5000)
    finally:
        ctx.destroy(linger=0)


@pytest.mark.parametrize("who", ["no_curve", "wrong_server_key", "unlisted_key"])
def test_other_clients_are_refused(
    keys: Path, other_keys: Path, who: str, caplog: pytest.LogCaptureFixture
) -> None:
    server_ctx: zmq.Context[Any] = zmq.Context()
    client_ctx: zmq.Context[Any] = zmq.Context()
    try:
        server, addr = _server(server_ctx, _curve(keys))
        if who == "no_curve":
            client = _raw_client(client_ctx, addr, None)
        elif who == "wrong_server_key":
            client = _raw_client(client_ctx, addr, other_keys)
        else:
            client = _raw_client(client_ctx, addr, keys, client="intruder")
        with caplog.at_level(logging.WARNING, logger="facestream.bus.auth"):
            assert not _delivered(server, client)
        # The server still serves the right client afterwards.
        good = _raw_client(client_ctx, addr, keys)
        assert _delivered(server, good, 5000)
        refusals = [r for r in caplog.records if "not in authorized_clients" in r.getMessage()]
        assert len(refusals) == (1 if who == "unlisted_key" else 0)
    finally:
        client_ctx.destroy(linger=0)
        server_ctx.destroy(linger=0)


def test_without_authorized_clients_any_key_that_knows_the_server_gets_in(keys: Path) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        server, addr = _server(ctx, _curve(keys, authorized=False))
        assert _delivered(server, _raw_client(ctx, addr, keys, client="intruder"), 5000)
        assert not _delivered(server, _raw_client(ctx, addr, None))
    finally:
        ctx.destroy(linger=0)


def test_destroying_the_context_stops_the_authenticator(keys: Path) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    _server(ctx, _curve(keys))
    before = {t.name for t in threading.enumerate()}
    assert "facestream-zap" in before
    started = time.monotonic()
    ctx.destroy(linger=0)
    assert time.monotonic() - started < 2.0
    deadline = time.monotonic() + 2.0
    while any(t.name == "facestream-zap" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == "facestream-zap" for t in threading.enumerate())


def test_bad_key_files_are_one_line_errors(keys: Path, tmp_path: Path) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        missing = _curve(keys, server_secret=tmp_path / "nope")
        with pytest.raises(FacestreamError, match="cannot read CURVE key"):
            make_socket(ctx, zmq.PULL, missing, bind=["tcp://127.0.0.1:*"])
        public_as_secret = _curve(keys, client_secret=keys / "client.key")
        with pytest.raises(FacestreamError, match="holds no secret key"):
            make_socket(ctx, zmq.PUSH, public_as_secret, connect=["tcp://127.0.0.1:5999"])
        no_folder = _curve(keys, authorized_clients=tmp_path / "none")
        other_ctx: zmq.Context[Any] = zmq.Context()
        try:
            with pytest.raises(FacestreamError, match="authorized_clients"):
                make_socket(other_ctx, zmq.PULL, no_folder, bind=["tcp://127.0.0.1:*"])
        finally:
            other_ctx.destroy(linger=0)
    finally:
        ctx.destroy(linger=0)
