"""Free loopback ports, for runs that pick their own (demo --serve, the bench, tests)."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from bus.errors import FacestreamError

TOP = 65000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(offsets: Iterable[int]) -> int:
    """A base port such that base + each offset is free now (e.g. the stages' /metrics)."""
    wanted = sorted(set(offsets))
    for _ in range(100):
        base = free_port()
        if base + wanted[-1] >= TOP:
            continue
        try:
            for offset in wanted:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise FacestreamError("no free block of ports on 127.0.0.1")
