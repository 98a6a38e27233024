"""A running pipeline listens on loopback only unless told otherwise (read from /proc/net/tcp*),
and with `bus.curve` set only clients holding the deployment's keys can read its results."""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from bus.config import load_config
from bus.topology import bus_port, ports_in_use
from tests.conftest import facestream, free_base_port
from tests.soak.harness import PipelineRun, curve_client, write_config

LISTEN = "0A"


def _ip(hex_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))  # four little-endian words
    return ipaddress.IPv6Address(words)


def listening(pids: list[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every TCP socket in LISTEN state owned by one of `pids`."""
    table: dict[str, tuple[str, int]] = {}
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != LISTEN:
                continue
            addr, port = fields[1].split(":")
            table[fields[9]] = (str(_ip(addr)), int(port, 16))
    found = []
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in table:
                found.append((pid, *table[target[8:-1]]))
    return found


def _is_loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def test_the_check_sees_a_socket_open_to_every_address() -> None:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        mine = listening([os.getpid()])
    assert ("0.0.0.0", port) in [(a, p) for _pid, a, p in mine]
    assert not _is_loopback("0.0.0.0") and _is_loopback("127.0.0.1") and _is_loopback("::1")


@pytest.fixture()
def gallery(tmp_path: Path, photos: Path) -> Path:
    path = tmp_path / "gallery.fsg"
    assert facestream(["enroll", str(path), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    return path


def test_pipeline_listens_on_loopback_only(tmp_path: Path, gallery: Path) -> None:
    base = free_base_port()
    metrics = free_base_port(avoid=[base])
    config = write_config(tmp_path, gallery, base, metrics={"base_port": metrics}, overlay={"mjpeg_port": 0})
    run = PipelineRun(config, base).start()
    try:
        assert run.next_result(120) is not None, run.stderr()[-3000:]
        stages = run.stage_pids()
        assert len(stages) == 5, stages
        sockets = listening([run.pid, *stages.values()])
        code = run.stop()
    finally:
        run.close()
    assert code == 0, run.stderr()[-3000:]
    ports = {port for _pid, _addr, port in sockets}
    # ZeroMQ: frames, work, embed input, match input, results; HTTP: 5 metrics endpoints, MJPEG.
    config_ports = {port for port, _what in ports_in_use(load_config(config))}
    assert len(config_ports) == 10 and config_ports <= ports  # 5 ZeroMQ sockets, 5 metrics endpoints
    assert len(sockets) >= 11, sockets
    open_wide = [s for s in sockets if not _is_loopback(s[1])]
    assert not open_wide, f"listening beyond loopback: {open_wide}"


def _count(socks: dict[str, zmq.Socket[Any]], seconds: float) -> dict[str, int]:
    """Messages each socket receives within `seconds`, all read side by side."""
    poller = zmq.Poller()
    for sock in socks.values():
        poller.register(sock, zmq.POLLIN)
    got = dict.fromkeys(socks, 0)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready = dict(poller.poll(int(left * 1000)))
        for who, sock in socks.items():
            while sock in ready and sock.poll(0):
                sock.recv_multipart()
                got[who] += 1
    return got


def test_curve_pipeline_serves_only_clients_with_keys(tmp_path: Path, gallery: Path) -> None:
    keys = tmp_path / "keys"
    assert facestream(["keys", str(keys)]).returncode == 0
    assert facestream(["keys", str(keys), "--client", "stranger"]).returncode == 0
    (keys / "authorized_clients" / "stranger.key").unlink()
    base = free_base_port()
    curve = {
        "server_secret": str(keys / "server.key_secret"),
        "server_public": str(keys / "server.key"),
        "client_secret": str(keys / "client.key_secret"),
        "client_public": str(keys / "client.key"),
        "authorized_clients": str(keys / "authorized_clients"),
    }
    config = write_config(tmp_path, gallery, base, bus={"curve": curve})
    run = PipelineRun(config, base, curve_keys=keys).start()  # its subscriber holds the client keys
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        assert run.next_result(120) is not None, run.stderr()[-3000:]
        others = {}
        for who in ("plain", "stranger"):
            sub = ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            if who == "stranger":
                curve_client(sub, keys, "stranger")
            sub.setsockopt(zmq.SUBSCRIBE, b"")
            sub.connect(f"tcp://127.0.0.1:{bus_port(base, 'results')}")
            others[who] = sub
        counts = _count({"authorized": run.sub, **others}, 4.0)
        code = run.stop()
    finally:
        ctx.destroy(linger=0)
        run.close()
    assert code == 0, run.stderr()[-3000:]
    assert counts["plain"] == 0 and counts["stranger"] == 0
    assert counts["authorized"] > 60, counts  # about 30 results a second
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("match-*.log"))
    assert "is not in authorized_clients" in logs
