"""Socket helpers: explicit high-water marks, no lingering, optional CURVE, drop-oldest draining."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import zmq
import zmq.auth

from bus.config import BusConfig


def _load_key(path: Path) -> bytes:
    from bus.errors import FacestreamError

    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise FacestreamError(f"cannot read CURVE key {path}: {exc}") from exc
    return secret if secret is not None else public


def make_socket(
    ctx: zmq.Context,
    kind: int,
    bus: BusConfig,
    *,
    bind: Iterable[str] = (),
    connect: Iterable[str] = (),
    hwm: int | None = None,
    subscribe: bytes | None = None,
) -> zmq.Socket:
    """Create a socket with the bus's HWM; a binding socket is a CURVE server when keys are set."""
    sock = ctx.socket(kind)
    limit = bus.hwm if hwm is None else hwm
    sock.setsockopt(zmq.SNDHWM, limit)
    sock.setsockopt(zmq.RCVHWM, limit)
    sock.setsockopt(zmq.LINGER, 0)
    binds, connects = list(bind), list(connect)
    if bus.curve is not None and bus.transport == "tcp":
        curve = bus.curve
        if binds:
            sock.curve_secretkey = _load_key(curve.server_secret)
            sock.curve_publickey = zmq.auth.load_certificate(str(curve.server_public))[0]
            sock.curve_server = True
        else:
            sock.curve_secretkey = _load_key(curve.client_secret)
            sock.curve_publickey = zmq.auth.load_certificate(str(curve.client_public))[0]
            sock.curve_serverkey = zmq.auth.load_certificate(str(curve.server_public))[0]
    if subscribe is not None:
        sock.setsockopt(zmq.SUBSCRIBE, subscribe)
    for addr in binds:
        _prepare_ipc(addr)
        sock.bind(addr)
    for addr in connects:
        sock.connect(addr)
    return sock


def _prepare_ipc(addr: str) -> None:
    if addr.startswith("ipc://"):
        path = Path(addr[len("ipc://") :])
        path.parent.mkdir(parents=True, exist_ok=True)


def drain(sock: zmq.Socket, first: list[zmq.Frame], limit: int = 1000) -> list[list[zmq.Frame]]:
    """Return `first` plus every message already waiting, oldest first (for drop-oldest)."""
    batch = [first]
    while len(batch) < limit:
        try:
            batch.append(sock.recv_multipart(zmq.NOBLOCK, copy=False))
        except zmq.Again:
            break
    return batch
