"""The pipeline's shape in one place: its stages, how many processes of each a config asks for,
the sockets between them and their ports, the metrics ports, and the environment variables that
the supervisor hands to stage processes.

Nothing else lists these facts: the supervisor (start order, which stage ends the service), the
`facestream stage` command, each stage's metrics server, the config's port check, the tests and
the benchmarks all ask this module.

Adding a stage is one entry in STAGES, e.g. the `events` consumer of match's results:

    StageSpec("events", "events.stage:EventsStage", 302, _events, _kinds("result", "frame", "eos")),

- `target`: where its `bus.stage.Stage` subclass lives, as "module:Class" (its `name` must be
  the key; a unit test checks every entry);
- `count`: how many processes a config asks for;
- `accepts`: the message kinds it reads (docs/wire.md); any other kind is refused, and counted,
  from its header alone;
- `drop_hops`: the `hop` labels of `facestream_drops_total` it counts (primed at zero);
- `metrics_offset` and `max_processes`: process i serves /metrics on metrics.base_port + offset
  + i; the blocks of two stages must not overlap (checked by `check_ports` and a unit test);
- `source`: started last, once every other stage is ready (cameras), and its end is final;
- `ends_service`: its clean end ends `facestream run`, but only after every source has ended;
- `other_ports`: any other tcp port it listens on (an HTTP page), for the port check.
Stages start in reverse STAGES order, so consumers listen before their producers start.
A stage that binds a socket that others connect to also adds its socket to HOPS.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bus.config import BusConfig, PipelineConfig

# Environment of a stage process (set by deploy/supervisor.py, or by hand on other hosts).
ENV_RESTARTS = "FACESTREAM_RESTARTS"  # how often this stage process was restarted (0: first start)
ENV_STATE_DIR = "FACESTREAM_STATE_DIR"  # a folder that outlives one stage process (the run dir)
ENV_CACHE = "FACESTREAM_CACHE"  # converted models (embed.zoo)
ENV_LOG = "FACESTREAM_LOG"  # log level of services (bus.logs)

PORT_MAX = 65535


def _cameras(config: PipelineConfig) -> int:
    return len(config.cameras)


def _detect_workers(config: PipelineConfig) -> int:
    return config.detect.workers


def _embed_workers(config: PipelineConfig) -> int:
    return config.embed.workers


def _one(config: PipelineConfig) -> int:
    return 1


def _events(config: PipelineConfig) -> int:
    return int(config.events is not None)  # an events (or web) section asks for it


def _web(config: PipelineConfig) -> int:
    return int(config.web is not None)


def _no_ports(config: PipelineConfig) -> list[tuple[int, str]]:
    return []


def _web_port(config: PipelineConfig) -> list[tuple[int, str]]:
    return [] if config.web is None or not config.web.port else [(config.web.port, "web.port")]


def _mjpeg_port(config: PipelineConfig) -> list[tuple[int, str]]:
    port = config.overlay.mjpeg_port
    return [(port, "overlay.mjpeg_port")] if port else []  # 0: any free port


@dataclass(frozen=True)
class StageSpec:
    name: str
    target: str  # "module:Class" of its Stage subclass
    metrics_offset: int
    count: Callable[[PipelineConfig], int]
    accepts: frozenset[str]  # message kinds it reads; others are refused before their payload is decoded
    max_processes: int = 1
    drop_hops: tuple[str, ...] = ()  # the `hop` labels of the drops it counts (series primed at zero)
    source: bool = False
    ends_service: bool = False
    # Other tcp ports its processes listen on (an HTTP page), as (port, config key) pairs.
    other_ports: Callable[[PipelineConfig], list[tuple[int, str]]] = _no_ports

    def __post_init__(self) -> None:
        if ":" not in self.target:
            raise ValueError(f"stage {self.name}: target must be 'module:Class', got {self.target!r}")


def _kinds(*kinds: str) -> frozenset[str]:
    return frozenset(kinds)


_NONE: frozenset[str] = frozenset()

# In pipeline order (sources first); stages start in the reverse order.
STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec(
            "capture",
            "capture.stage:CaptureStage",
            0,
            _cameras,
            _NONE,
            max_processes=100,
            drop_hops=("capture->overlay", "capture->detect"),
            source=True,
        ),
        StageSpec(
            "detect",
            "detect.stage:DetectStage",
            100,
            _detect_workers,
            _kinds("frame", "eos"),
            max_processes=100,
            drop_hops=("capture->detect", "detect->embed", "detect->match"),
        ),
        StageSpec(
            "embed",
            "embed.stage:EmbedStage",
            200,
            _embed_workers,
            _kinds("faces", "eos"),
            max_processes=100,
            drop_hops=("detect->embed", "embed->match"),
        ),
        # faces: tracked faces without crops come straight from detect (issue 10)
        StageSpec("match", "match.stage:MatchStage", 300, _one, _kinds("embeddings", "faces", "eos")),
        StageSpec(
            "overlay",
            "overlay.stage:OverlayStage",
            301,
            _one,
            _kinds("frame", "result", "eos"),
            drop_hops=("match->overlay", "frames_missing", "overlay_late_frame", "overlay_no_result"),
            ends_service=True,
            other_ports=_mjpeg_port,
        ),
        # The operator's console: sightings from results (and a frame now and then for a
        # snapshot), and the HTTP console that reads them.
        StageSpec("events", "events.stage:EventsStage", 302, _events, _kinds("frame", "result", "eos")),
        StageSpec("web", "web.stage:WebStage", 303, _web, _kinds("result", "eos"), other_ports=_web_port),
    )
}
START_ORDER: tuple[str, ...] = tuple(reversed(STAGES))


@dataclass(frozen=True)
class Hop:
    """A socket that one stage binds and others connect to (docs/wire.md, "Sockets")."""

    name: str
    owner: str  # the binding stage
    port_offset: int  # from bus.base_port
    per_process: bool  # one socket per process of the owner (its port: offset + process index)


HOPS: dict[str, Hop] = {
    hop.name: hop
    for hop in (
        Hop("frames", "capture", 0, per_process=True),
        Hop("work", "capture", 100, per_process=True),
        Hop("embed_in", "embed", 200, per_process=True),
        Hop("match_in", "match", 300, per_process=False),
        Hop("results", "match", 301, per_process=False),
    )
}


def stage_spec(name: str) -> StageSpec:
    try:
        return STAGES[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}") from None


def process_count(config: PipelineConfig, stage: str) -> int:
    return stage_spec(stage).count(config)


def restart_count() -> int:
    """How often the supervisor restarted this process (0 when run by hand or at first start)."""
    try:
        return max(0, int(os.environ.get(ENV_RESTARTS, "0")))
    except ValueError:
        return 0


# --- sockets ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    bind: str  # address the owning stage binds
    connect: str  # address the other side connects to


def _hop(name: str) -> Hop:
    try:
        return HOPS[name]
    except KeyError:
        raise KeyError(f"unknown hop {name!r}") from None


def bus_port(base_port: int, hop: str, index: int = 0) -> int:
    """The tcp port of process `index`'s socket of `hop` (index counts only for per-process hops)."""
    spec = _hop(hop)
    return base_port + spec.port_offset + (index if spec.per_process else 0)


def endpoint(bus: BusConfig, hop: str, index: int = 0) -> Endpoint:
    spec = _hop(hop)
    if bus.transport == "ipc":
        assert bus.ipc_dir is not None
        addr = f"ipc://{bus.ipc_dir / f'{hop}-{index}'}"
        return Endpoint(addr, addr)
    port = bus_port(bus.base_port, hop, index)
    host = bus.host_of(spec.owner, index)
    bind_host = "0.0.0.0" if bus.bind_any else host
    return Endpoint(f"tcp://{bind_host}:{port}", f"tcp://{host}:{port}")


def all_endpoints(config: PipelineConfig, hop: str) -> list[Endpoint]:
    """Every endpoint of a hop: one per process of its owner for per-process hops, else one."""
    count = process_count(config, _hop(hop).owner) if _hop(hop).per_process else 1
    return [endpoint(config.bus, hop, i) for i in range(count)]


# --- metrics and the port check ----------------------------------------------------------------
def metrics_port(config: PipelineConfig, stage: str, index: int = 0) -> int | None:
    """Where process `index` of `stage` serves /metrics; None when metrics.base_port is unset."""
    base = config.metrics.base_port
    return None if base is None else base + stage_spec(stage).metrics_offset + index


def ports_in_use(config: PipelineConfig) -> Iterator[tuple[int, str]]:
    """(port, what uses it) for every tcp port the config asks a process to listen on."""
    if config.bus.transport == "tcp":
        for hop in HOPS.values():
            count = process_count(config, hop.owner) if hop.per_process else 1
            for i in range(count):
                what = f"bus {hop.name}" + (f" of {hop.owner} {i}" if hop.per_process else "")
                yield bus_port(config.bus.base_port, hop.name, i), what
    for spec in STAGES.values():
        for i in range(spec.count(config)):
            port = metrics_port(config, spec.name, i)
            if port is not None:
                yield port, f"metrics of {spec.name} {i}"
        yield from spec.other_ports(config)


def check_ports(config: PipelineConfig) -> None:
    """Refuse a config whose processes would need one port twice, or a port beyond 65535.

    Ports are compared whatever host they bind: stages on one host is the common case, and a
    multi-host deployment loses nothing by keeping its port blocks apart.
    """
    for spec in STAGES.values():
        count = spec.count(config)
        if count > spec.max_processes:
            raise ValueError(
                f"{count} {spec.name} processes, at most {spec.max_processes}: each process's sockets "
                f"and metrics take one port of a block of {spec.max_processes} (docs/wire.md)"
            )
    seen: dict[int, str] = {}
    for port, what in ports_in_use(config):
        if port > PORT_MAX:
            raise ValueError(f"{what} would listen on port {port}, beyond {PORT_MAX}: lower the base port")
        if port in seen:
            raise ValueError(
                f"port {port} is wanted twice, by {seen[port]} and by {what}: move bus.base_port, "
                "metrics.base_port or overlay.mjpeg_port apart"
            )
        seen[port] = what
