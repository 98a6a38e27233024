"""Socket helpers: explicit high-water marks, no lingering, optional CURVE, drop-oldest draining."""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.utils import z85

from bus.config import BusConfig, CurveConfig
from bus.errors import FacestreamError
from bus.wire import MAX_HEADER_BYTES, MAX_PART_BYTES

# Hops that carry no images (faces without crops, embeddings, results) queue up to this many
# messages instead of bus.hwm: they are a few hundred bytes each, and bursts are normal (match
# releases a camera's frames together once the frame they waited for is named). With the image
# hops' HWM of 8, a PUB dropped 76 of 180 results in such bursts on a busy 2-core machine.
SMALL_HWM = 1000

# A bound socket disconnects a peer that sends a bigger frame before it is buffered in full;
# frames between MAX_PART_BYTES and this still arrive, and are counted as "oversize".
MAX_FRAME_BYTES = 2 * MAX_PART_BYTES + MAX_HEADER_BYTES
ZAP_ENDPOINT = "inproc://zeromq.zap.01"

log = logging.getLogger("facestream.bus.auth")


def _load_key(path: Path, secret: bool = False) -> bytes:
    """The public key of a key file, or its secret key (which then must be present)."""
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise FacestreamError(f"cannot read CURVE key {path}: {exc}") from exc
    if not secret:
        return public
    if secret_key is None:
        raise FacestreamError(
            f"CURVE key {path} holds no secret key: give the .key_secret file written by `facestream keys`"
        )
    return secret_key


def _authorized_keys(folder: Path) -> frozenset[bytes]:
    """Z85 public keys of every `*.key` file in `folder` (the clients allowed to connect)."""
    try:
        keys = zmq.auth.load_certificates(str(folder))
    except (OSError, ValueError) as exc:
        raise FacestreamError(f"cannot read CURVE authorized_clients {folder}: {exc}") from exc
    if not keys:
        log.warning("authorized_clients %s holds no *.key file: every CURVE client is refused", folder)
    return frozenset(keys)


class ZapHandler:
    """Answers libzmq's authentication (ZAP) requests for one context in a thread.

    Its socket is made outside the context's socket list, so that `ctx.destroy()` from the stage's
    thread never closes it from the wrong thread: terminating the context wakes the handler
    (ETERM), which then closes its socket itself and lets the termination finish.
    """

    def __init__(self, ctx: zmq.Context[Any], allowed: frozenset[bytes]) -> None:
        self.allowed = allowed
        self.refused: set[bytes] = set()
        self._ready = threading.Event()
        self._error: zmq.ZMQError | None = None
        self.thread = threading.Thread(target=self._serve, args=(ctx,), daemon=True, name="facestream-zap")
        self.thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise FacestreamError(f"cannot start CURVE authentication: {self._error}")

    def _serve(self, ctx: zmq.Context[Any]) -> None:
        sock: zmq.Socket[Any] = zmq.Socket(ctx, zmq.REP)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as exc:
            self._error = exc
            sock.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                request = sock.recv_multipart()
                sock.send_multipart(self.answer(request))
        except zmq.ZMQError:
            pass  # the context is being terminated
        finally:
            sock.close(linger=0)

    def answer(self, request: list[bytes]) -> list[bytes]:
        """ZAP reply: 200 for a CURVE client whose key is listed (and for non-CURVE sockets)."""
        if len(request) < 6:
            return [b"1.0", b"", b"500", b"malformed ZAP request", b"", b""]
        version, request_id, _domain, address, _identity, mechanism = request[:6]
        if mechanism != b"CURVE":
            return [version, request_id, b"200", b"OK", b"", b""]
        key = z85.encode(request[6]) if len(request) > 6 and len(request[6]) == 32 else b""
        if key in self.allowed:
            return [version, request_id, b"200", b"OK", key, b""]
        if key not in self.refused:
            self.refused.add(key)
            log.warning(
                "refused a CURVE client from %s: key %s is not in authorized_clients",
                address.decode(errors="replace"),
                key.decode(errors="replace") or "?",
            )
        return [version, request_id, b"400", b"client key not authorized", b"", b""]


_handlers: weakref.WeakKeyDictionary[zmq.Context[Any], ZapHandler] = weakref.WeakKeyDictionary()
_handlers_lock = threading.Lock()


def zap_handler(ctx: zmq.Context[Any], folder: Path) -> ZapHandler:
    """The context's one ZAP handler, started on first use with the keys found in `folder`."""
    with _handlers_lock:
        handler = _handlers.get(ctx)
        if handler is None:
            handler = ZapHandler(ctx, _authorized_keys(folder))
            _handlers[ctx] = handler
        return handler


def _apply_curve(ctx: zmq.Context[Any], sock: zmq.Socket[Any], curve: CurveConfig, server: bool) -> None:
    if server:
        if curve.authorized_clients is not None:
            zap_handler(ctx, curve.authorized_clients)  # before bind: libzmq asks it on every handshake
        sock.curve_secretkey = _load_key(curve.server_secret, secret=True)
        sock.curve_publickey = _load_key(curve.server_public)
        sock.curve_server = True
    else:
        sock.curve_secretkey = _load_key(curve.client_secret, secret=True)
        sock.curve_publickey = _load_key(curve.client_public)
        sock.curve_serverkey = _load_key(curve.server_public)


def make_socket(
    ctx: zmq.Context[Any],
    kind: int,
    bus: BusConfig,
    *,
    bind: Iterable[str] = (),
    connect: Iterable[str] = (),
    hwm: int | None = None,
    subscribe: bytes | None = None,
) -> zmq.Socket[Any]:
    """Create a socket with the bus's HWM; a binding socket is a CURVE server when keys are set.

    With `bus.curve.authorized_clients`, only clients whose public key is in that folder get in.
    """
    sock = ctx.socket(kind)
    limit = bus.hwm if hwm is None else hwm
    sock.setsockopt(zmq.SNDHWM, limit)
    sock.setsockopt(zmq.RCVHWM, limit)
    sock.setsockopt(zmq.LINGER, 0)
    binds, connects = list(bind), list(connect)
    _apply_liveness(sock, bus, kind, load_balancing=kind == zmq.PUSH and bool(connects))
    if binds:
        # Anyone may connect to a bound socket: cut off a peer that sends a huge frame before it
        # is buffered. (Not on connecting sockets: libzmq would not reconnect after such a cut.)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_FRAME_BYTES)
    try:
        if bus.curve is not None and bus.transport == "tcp":
            _apply_curve(ctx, sock, bus.curve, server=bool(binds))
        if subscribe is not None:
            sock.setsockopt(zmq.SUBSCRIBE, subscribe)
        for addr in binds:
            _prepare_ipc(addr)
            try:
                sock.bind(addr)
            except zmq.ZMQError as exc:
                raise FacestreamError(
                    f"cannot listen on {addr}: {exc} (is another pipeline running?)"
                ) from exc
        for addr in connects:
            sock.connect(addr)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


RECEIVE_ONLY = (zmq.PULL, zmq.SUB)


def _apply_liveness(sock: zmq.Socket[Any], bus: BusConfig, kind: int, load_balancing: bool) -> None:
    """Dead peers leave the load balancing: heartbeats find them, IMMEDIATE keeps them out.

    Without heartbeats a PUSH socket goes on sending every other message to a worker whose host
    vanished until that TCP connection's buffers fill, which for small messages takes minutes.
    With IMMEDIATE a connecting PUSH socket queues messages only on connections that are up, so
    a peer that is down (or being reconnected) gets nothing; when no peer is up, sends fail and are
    counted as drops. (Only there: on a connecting PULL, IMMEDIATE made libzmq lose messages.)

    Receive-only sockets (PULL, SUB) get TCP keepalive with the same timing instead of ZMTP
    heartbeats: libzmq 4.3.5 aborts the whole process ("Assertion failed: !_io_error") when a
    heartbeat falls due on a connection whose peer went away while the receiver's queue was full,
    which is what a busy stage's input looks like when a camera ends or a peer restarts.
    Keepalive finds a vanished sender host just as well, and a receiver needs nothing else.
    """
    if bus.heartbeat_s is None:
        pass
    elif kind in RECEIVE_ONLY:
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, max(1, round(bus.heartbeat_s)))
        sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, max(1, round(bus.heartbeat_s)))
        sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, max(1, math.ceil(bus.peer_timeout_s / bus.heartbeat_s)))
    else:
        sock.setsockopt(zmq.HEARTBEAT_IVL, round(bus.heartbeat_s * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, round(bus.peer_timeout_s * 1000))
        sock.setsockopt(zmq.HEARTBEAT_TTL, round(bus.peer_timeout_s * 1000))
    if bus.heartbeat_s is not None:
        # A reconnect whose SYN goes unanswered (link still down) is retried after heartbeat_s
        # instead of waiting out TCP's doubling SYN back-off: the stream resumes within about a
        # second of the link coming back, however long it was down.
        sock.setsockopt(zmq.CONNECT_TIMEOUT, round(bus.heartbeat_s * 1000))
    if load_balancing:
        sock.setsockopt(zmq.IMMEDIATE, 1)


def _prepare_ipc(addr: str) -> None:
    if addr.startswith("ipc://"):
        path = Path(addr[len("ipc://") :])
        path.parent.mkdir(parents=True, exist_ok=True)


def drain(
    sock: zmq.Socket[Any], first: list[zmq.Frame] | None = None, limit: int = 1000
) -> list[list[zmq.Frame]]:
    """Return `first` (if any) plus every message already waiting, oldest first (for drop-oldest)."""
    batch = [] if first is None else [first]
    while len(batch) < limit:
        try:
            batch.append(sock.recv_multipart(zmq.NOBLOCK, copy=False))
        except zmq.Again:
            break
    return batch
