"""A real stage (capture, a CURVE server on tcp) serves only clients with the deployment's keys."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import zmq
import zmq.auth

from bus.config import parse_config
from bus.records import EndOfStream, Frame, record_from_message
from bus.topology import endpoint
from bus.wire import decode
from capture.stage import CaptureStage
from deploy.assets import carphone_video
from deploy.keys import make_keys
from tests.stage_thread import StageThread


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _client(
    ctx: zmq.Context[Any], kind: int, addr: str, keys: Path | None, name: str = "client"
) -> zmq.Socket[Any]:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 1000)
    if keys is not None:
        public, secret = zmq.auth.load_certificate(str(keys / f"{name}.key_secret"))
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_serverkey = zmq.auth.load_certificate(str(keys / "server.key"))[0]
    if kind == zmq.SUB:
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(addr)
    return sock


def test_capture_with_curve_serves_only_authorized_clients(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    make_keys(keys, "client")
    make_keys(keys, "stranger")
    (keys / "authorized_clients" / "stranger.key").unlink()
    base = _free_port()
    config = parse_config(
        {
            "cameras": [{"id": "cam0", "source": str(carphone_video()), "max_frames": 60, "fps": 60}],
            "match": {"gallery": str(tmp_path / "g.fsg")},
            "bus": {
                "transport": "tcp",
                "base_port": base,
                "hwm": 1000,
                "curve": {
                    "server_secret": str(keys / "server.key_secret"),
                    "server_public": str(keys / "server.key"),
                    "client_secret": str(keys / "client.key_secret"),
                    "client_public": str(keys / "client.key"),
                    "authorized_clients": str(keys / "authorized_clients"),
                },
            },
        }
    )
    frames_at = endpoint(config.bus, "frames", 0).connect
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        good = _client(ctx, zmq.SUB, frames_at, keys)
        worker = _client(ctx, zmq.PULL, endpoint(config.bus, "work", 0).connect, keys)
        plain = _client(ctx, zmq.SUB, frames_at, None)
        stranger = _client(ctx, zmq.SUB, frames_at, keys, name="stranger")
        runner = StageThread(CaptureStage(config, 0)).start()
        got: dict[zmq.Socket[Any], int] = {good: 0, worker: 0, plain: 0, stranger: 0}
        poller = zmq.Poller()
        for sock in got:
            poller.register(sock, zmq.POLLIN)
        ended: set[zmq.Socket[Any]] = set()
        while ended != {good, worker}:  # the end goes out on both links, each after its frames
            ready = dict(poller.poll(10_000))
            assert ready, f"no end of stream on {len({good, worker} - ended)} authorized link(s)"
            for sock in ready:
                record = record_from_message(decode(sock.recv_multipart(copy=False)))
                if isinstance(record, Frame):
                    got[sock] += 1
                elif isinstance(record, EndOfStream) and sock in (good, worker):
                    ended.add(sock)
        runner.join(10)
    finally:
        ctx.destroy(linger=0)
    assert got[good] == 60 and got[worker] == 60
    assert got[plain] == 0 and got[stranger] == 0
