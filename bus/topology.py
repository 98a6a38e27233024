"""Where every socket binds and connects, derived from the config alone.

Sources bind their outputs (one capture process per camera), workers connect to all of them;
embed workers and match bind their inputs so that any number of upstream workers can connect.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus.config import BusConfig, PipelineConfig

# Port offsets from bus.base_port for tcp; each block leaves room for 100 processes.
_OFFSETS = {"frames": 0, "work": 100, "embed_in": 200, "match_in": 300, "results": 301}
_OWNER = {
    "frames": "capture",
    "work": "capture",
    "embed_in": "embed",
    "match_in": "match",
    "results": "match",
}


@dataclass(frozen=True)
class Endpoint:
    bind: str  # address the owning stage binds
    connect: str  # address the other side connects to


def endpoint(bus: BusConfig, hop: str, index: int = 0) -> Endpoint:
    if hop not in _OFFSETS:
        raise KeyError(f"unknown hop {hop!r}")
    if bus.transport == "ipc":
        assert bus.ipc_dir is not None
        addr = f"ipc://{bus.ipc_dir / f'{hop}-{index}'}"
        return Endpoint(addr, addr)
    port = bus.base_port + _OFFSETS[hop] + (index if hop in ("frames", "work", "embed_in") else 0)
    host = bus.host_of(_OWNER[hop], index)
    bind_host = "0.0.0.0" if bus.bind_any else host
    return Endpoint(f"tcp://{bind_host}:{port}", f"tcp://{host}:{port}")


def all_endpoints(config: PipelineConfig, hop: str) -> list[Endpoint]:
    """Every endpoint of a hop that has one per process (frames/work: cameras; embed_in: workers)."""
    count = {
        "frames": len(config.cameras),
        "work": len(config.cameras),
        "embed_in": config.embed.workers,
    }.get(hop, 1)
    return [endpoint(config.bus, hop, i) for i in range(count)]
