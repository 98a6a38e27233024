"""A hung peer leaves the load balancing: heartbeats find it, so the live peer gets the work.

The hung peer is a real process holding a PULL socket, stopped with SIGSTOP: its kernel still
accepts and acknowledges TCP, so only the ZMTP heartbeat can tell it is gone (as with a host whose
cable was pulled, seen from the side that still has its link).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from pydantic import ValidationError

from bus.config import BusConfig
from bus.sockets import make_socket

PEER = """
import sys, zmq
pull = zmq.Context().socket(zmq.PULL)
port = pull.bind_to_random_port("tcp://127.0.0.1")
print(port, flush=True)
while True:
    pull.recv()
"""
RATE_HZ = 200
SEND_S = 6.0


@pytest.fixture
def hung_peer() -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen([sys.executable, "-c", PEER], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield proc, f"tcp://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait(10)


def _share_after_stop(bus: BusConfig, peer: subprocess.Popen[str], peer_addr: str) -> tuple[float, float]:
    """(share the live peer got once the timeout had passed, share before the stop)."""
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        live = make_socket(ctx, zmq.PULL, bus, bind=["tcp://127.0.0.1:*"])
        push = make_socket(ctx, zmq.PUSH, bus, connect=[live.getsockopt_string(zmq.LAST_ENDPOINT), peer_addr])
        sent: list[tuple[int, float]] = []  # (seq, seconds since the peer stopped)
        got: set[int] = set()

        def send_for(seconds: float, since: float, first: int) -> int:
            seq, end = first, time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    push.send(seq.to_bytes(4, "big"), zmq.NOBLOCK)
                    sent.append((seq, time.monotonic() - since))
                except zmq.Again:
                    pass  # every connection up is full: the message is dropped, as stages count it
                seq += 1
                while live.poll(0):
                    got.add(int.from_bytes(live.recv(), "big"))
                time.sleep(1 / RATE_HZ)
            return seq

        deadline = time.monotonic() + 10  # both connections up (IMMEDIATE: only then sendable)
        while not push.poll(100, zmq.POLLOUT) and time.monotonic() < deadline:
            pass
        warm = send_for(1.0, time.monotonic(), 0)
        peer.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        send_for(SEND_S, stopped, warm)
        time.sleep(0.2)
        while live.poll(0):
            got.add(int.from_bytes(live.recv(), "big"))
        before = [s for s, _ in sent if s < warm]
        after = [s for s, t in sent if s >= warm and t > bus.peer_timeout_s + 1.0]
        assert before and after
        return sum(s in got for s in after) / len(after), sum(s in got for s in before) / len(before)
    finally:
        ctx.destroy(linger=0)


def test_a_hung_peer_stops_getting_messages_after_the_timeout(
    hung_peer: tuple[subprocess.Popen[str], str],
) -> None:
    after, before = _share_after_stop(BusConfig(heartbeat_s=0.5, peer_timeout_s=1.5), *hung_peer)
    assert 0.3 < before < 0.7  # both peers shared the work while both were up
    assert after >= 0.97, f"the live peer got {after:.0%} of the messages sent after the timeout"


def test_without_heartbeats_a_hung_peer_keeps_swallowing_messages(
    hung_peer: tuple[subprocess.Popen[str], str],
) -> None:
    """The failure the heartbeats fix: TCP buffers of the hung peer take every other message."""
    after, _ = _share_after_stop(BusConfig(heartbeat_s=None, peer_timeout_s=1.5), *hung_peer)
    assert after < 0.7


def test_the_timeout_must_outlast_the_heartbeat() -> None:
    with pytest.raises(ValidationError, match="peer_timeout_s"):
        BusConfig(heartbeat_s=2.0, peer_timeout_s=2.0)
    assert BusConfig(heartbeat_s=None, peer_timeout_s=0.5).heartbeat_s is None


BACKLOGGED_RECEIVER = """
import sys, time, zmq
from bus.config import BusConfig
from bus.sockets import make_socket
kind = {"pull": zmq.PULL, "sub": zmq.SUB}[sys.argv[2]]
bus = BusConfig(heartbeat_s=0.2, peer_timeout_s=0.6)
ctx = zmq.Context()
sock = make_socket(ctx, kind, bus, connect=[sys.argv[1]], hwm=4, subscribe=b"" if kind == zmq.SUB else None)
print("ready", flush=True)
sys.stdin.readline()  # the sender has filled our queue and gone away
time.sleep(1.5)  # several heartbeat intervals with a full queue and a dead peer
got = 0
while sock.poll(300):
    sock.recv()
    got += 1
print("alive", got, flush=True)
"""


@pytest.mark.parametrize("transport", ["ipc", "tcp"])
@pytest.mark.parametrize("kind", ["pull", "sub"])
def test_a_full_receiver_survives_its_sender_going_away(tmp_path: Any, transport: str, kind: str) -> None:
    """libzmq 4.3.5 aborts a process whose heartbeating socket's queue is full when its peer
    leaves (a busy stage when a camera ends): receive-only sockets must not heartbeat."""
    ctx: zmq.Context[Any] = zmq.Context()
    bus = BusConfig(heartbeat_s=0.2, peer_timeout_s=0.6)
    sender = make_socket(
        ctx,
        zmq.PUSH if kind == "pull" else zmq.PUB,
        bus,
        hwm=4,
        bind=[f"ipc://{tmp_path}/s.ipc" if transport == "ipc" else "tcp://127.0.0.1:*"],
    )
    addr = sender.getsockopt_string(zmq.LAST_ENDPOINT)
    proc = subprocess.Popen(
        [sys.executable, "-c", BACKLOGGED_RECEIVER, addr, kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 10
        sent = 0
        while time.monotonic() < deadline and sent < 200:  # until the queues are full (PUSH blocks,
            try:  # PUB drops: 200 is far more than both queues hold)
                sender.send(b"x" * 50_000, zmq.NOBLOCK)
                sent += 1
            except zmq.Again:
                if sent >= 8:
                    break
                time.sleep(0.01)
        sender.close(linger=0)
        ctx.term()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, f"receiver died ({proc.returncode}): {err[-500:]}"
    assert out.startswith("alive")
