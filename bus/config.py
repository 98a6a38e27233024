"""The pipeline's YAML config, validated by pydantic (`extra="forbid"`: a typo is an error).

It lives in `bus` because every stage reads its own section and stages never import each other.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bus.errors import FacestreamError
from bus.topology import check_ports
from bus.tracks import MAX_DETECT_WORKERS


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are refused, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CurveConfig(StrictModel):
    """ZeroMQ CURVE keys (files written by `facestream keys`) for links between hosts."""

    server_secret: Path  # the binding side's secret key file
    server_public: Path  # the binding side's public key file, known to every client
    client_secret: Path  # this deployment's client secret key file
    client_public: Path
    authorized_clients: Path | None = None  # folder of client public keys; None = any client key


class BusConfig(StrictModel):
    transport: Literal["ipc", "tcp"] = "tcp"
    ipc_dir: Path | None = None  # required for ipc
    host: str = "127.0.0.1"  # address every stage binds on and connects to by default
    # Where each binding stage lives: one address for all its processes, or one per process
    # (capture: per camera, embed: per worker) so that they can run on different hosts.
    hosts: dict[Literal["capture", "embed", "match"], str | list[str]] = Field(default_factory=dict)
    bind_any: bool = False  # bind 0.0.0.0 instead of the host address (containers)
    base_port: int = Field(default=5550, ge=1024, le=65000)
    hwm: int = Field(default=8, ge=1, le=10_000)  # high-water mark on every data socket
    # ZMTP heartbeats: a peer that answers none for peer_timeout_s (host gone, cable pulled,
    # process hung) is disconnected, so load balancing stops feeding it at once instead of
    # filling its TCP buffers for minutes. None turns them off.
    heartbeat_s: float | None = Field(default=1.0, gt=0.0, le=3600.0)
    peer_timeout_s: float = Field(default=3.0, gt=0.0, le=3600.0)
    jpeg_quality: int | None = Field(default=None, ge=10, le=100)  # JPEG frames on the wire
    curve: CurveConfig | None = None

    @model_validator(mode="after")
    def _ipc_needs_dir(self) -> BusConfig:
        if self.transport == "ipc" and self.ipc_dir is None:
            raise ValueError("bus.ipc_dir is required when bus.transport is 'ipc'")
        return self

    @model_validator(mode="after")
    def _timeout_outlasts_heartbeat(self) -> BusConfig:
        if self.heartbeat_s is not None and self.peer_timeout_s <= self.heartbeat_s:
            raise ValueError(
                f"bus.peer_timeout_s ({self.peer_timeout_s:g}) must be longer than bus.heartbeat_s "
                f"({self.heartbeat_s:g}): a peer needs time to answer a heartbeat"
            )
        return self

    def host_of(self, stage: str, index: int = 0) -> str:
        """The address of process `index` of a binding stage (capture, embed, match)."""
        where = self.hosts.get(stage, self.host)  # type: ignore[call-overload]
        if isinstance(where, str):
            return where
        if not 0 <= index < len(where):
            raise FacestreamError(f"bus.hosts.{stage} lists {len(where)} address(es), none for index {index}")
        return str(where[index])


class CameraDetectConfig(StrictModel):
    """Per-camera overrides of the detect section (unset: the pipeline's value)."""

    min_face: int | None = Field(default=None, ge=4)
    motion: bool | None = None
    refresh_s: float | None = Field(default=None, gt=0.0)
    detect_interval_s: float | None = Field(default=None, ge=0.0)


class CameraConfig(StrictModel):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    source: str  # video file path, webcam index ("0"), or rtsp:// / http(s):// URL
    realtime: bool = True  # pace files at their own frame rate (False: as fast as possible)
    fps: float | None = Field(default=None, gt=0, le=240)  # cap the rate (and the file pace)
    loop: bool = False  # replay a file forever (soak tests, demos)
    max_frames: int | None = Field(default=None, ge=1)
    # A lost camera is reopened after retry_s, then after twice as long each time, at most
    # retry_max_s apart; forever unless max_retries is set (a camera service never gives up by
    # default). A capture that gives up exits with code 3, so restart policies apply to it.
    retry_s: float = Field(default=2.0, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    # FFmpeg decoding threads for files and streams (0: FFmpeg's default, one per core). One
    # suits a paced camera up to about 1080p; raise it for 4K streams at full rate.
    decode_threads: int = Field(default=1, ge=0, le=64)
    detect: CameraDetectConfig | None = None  # this camera's own detection settings

    @model_validator(mode="after")
    def _backoff_cap(self) -> CameraConfig:
        if self.retry_max_s < self.retry_s:
            raise ValueError(f"retry_max_s ({self.retry_max_s:g}) is shorter than retry_s ({self.retry_s:g})")
        return self


class DetectConfig(StrictModel):
    backend: Literal["yunet", "haar", "mtcnn"] = "yunet"
    workers: int = Field(default=1, ge=1, le=MAX_DETECT_WORKERS)  # each fits in a track id (bus.tracks)
    score_threshold: float = Field(default=0.7, ge=0.0, le=1.0)
    min_face: int = Field(default=16, ge=4)  # smallest face side, pixels
    max_side: int = Field(default=640, ge=64)  # frames are scaled down to this for detection
    crop_margin: float = Field(default=0.3, ge=0.0, le=2.0)
    mtcnn_dir: Path | None = None  # exported P/R/O-Net ONNX files; None = the bundled export
    # OpenCV threads per detect process; 1 keeps N workers from oversubscribing the cores
    # (0 = OpenCV's default, all cores: right for a single worker on a big machine).
    threads: int = Field(default=1, ge=0, le=256)
    # Each camera feeds only "its" workers (camera i -> worker i mod N; with fewer cameras than
    # workers, each worker serves one camera): a camera's newest frame is then never stuck behind
    # other workers' queues, and its tracks stay in one process. False: every worker takes frames
    # of every camera (survives losing a worker host without a camera stalling).
    camera_affinity: bool = True
    # Face tracking (docs/performance.md): a track is embedded when it appears, then again only
    # when a clearly better face of it shows up or after reembed_interval_s; match keeps its name.
    track: bool = True
    track_iou: float = Field(default=0.3, gt=0.0, le=1.0)  # least box overlap that continues a track
    track_max_age_s: float = Field(default=1.0, gt=0.0)  # a track unseen for this long ends
    reembed_interval_s: float = Field(default=2.0, gt=0.0)
    reembed_gain: float = Field(default=0.25, ge=0.0)  # quality gain over the last embedded face
    # A new track is embedded again after 1/2**N, then 1/2**(N-1) ... of reembed_interval_s:
    # a lost first embedding costs a fraction of the interval of name, not all of it. Each step
    # costs one embedding per new face (N=3 cost 5 % of the 2-core 4-feed throughput, N=1 ~3 %).
    reembed_warmup: int = Field(default=1, ge=0, le=10)
    # Before a face is embedded, look at it again turned upright (detect.upright), so that faces
    # rolled in the image plane are aligned level: 30-degree rolls went from similarity 0.17-0.55
    # to 0.60-0.74 on the demo photos, for ~9 ms of CPU per embedded face with YuNet (2-core
    # Intel Xeon; only faces about to be embedded are looked at, 0.02-0.03 per frame).
    upright: bool = True
    # The detection budget (docs/performance.md). A full-frame detection runs when something may
    # have changed: motion outside the tracked faces (motion: a cheap frame difference on a small
    # grey copy), a face that following lost, and at least every refresh_s. Between detections
    # tracked faces are followed by template matching, and a still scene costs nothing. Full
    # detections of one camera are at least detect_interval_s apart (0: every frame that wants
    # one); when a worker falls behind, that interval grows for all its cameras alike, up to
    # max_detect_interval_s.
    motion: bool = True
    refresh_s: float = Field(default=2.0, gt=0.0)
    detect_interval_s: float = Field(default=0.0, ge=0.0)
    max_detect_interval_s: float = Field(default=1.0, gt=0.0)

    @model_validator(mode="after")
    def _interval_below_its_ceiling(self) -> DetectConfig:
        if self.detect_interval_s > self.max_detect_interval_s:
            raise ValueError(
                f"detect.detect_interval_s ({self.detect_interval_s:g}) must not exceed "
                f"detect.max_detect_interval_s ({self.max_detect_interval_s:g})"
            )
        return self

    def for_camera(self, camera: CameraConfig) -> DetectConfig:
        """This section with the camera's own overrides applied."""
        if camera.detect is None:
            return self
        overrides = camera.detect.model_dump(exclude_none=True)
        return self.model_copy(update=overrides) if overrides else self


class EmbedConfig(StrictModel):
    model: str = "sface"  # "sface" (bundled) or a path to an ONNX file with facestream metadata
    workers: int = Field(default=1, ge=1, le=64)
    batch_size: int = Field(default=32, ge=1, le=1024)
    batch_wait_ms: float = Field(default=2.0, ge=0.0, le=1000.0)
    cache_dir: Path | None = None  # where converted models are kept
    threads: int = Field(default=1, ge=0, le=256)  # onnxruntime intra-op threads (0 = all)


class MatchConfig(StrictModel):
    gallery: Path
    # None: the model's own. Above 0: at 0 or below nearly every stranger would get a name.
    threshold: float | None = Field(default=None, gt=0.0, le=1.0)
    vote_window: int = Field(default=5, ge=1, le=100)  # a track's name: vote over its last N matches
    # A frame waits at most this long for the frame it follows (they reach match by two paths,
    # through embed or not), so names are decided in frame order.
    reorder_wait_s: float = Field(default=1.0, ge=0.0, le=30.0)
    threads: int = Field(default=1, ge=0, le=256)  # FAISS search threads (0 = all cores)


class OverlayConfig(StrictModel):
    output: Path | None = None  # MP4 file; one per camera when there are several
    # Start a new file (out.seg1.mp4, out.seg2.mp4, ...) after this many seconds of video: an open
    # MP4 keeps its index in memory (~72 bytes a frame) and is playable only once closed, so a
    # service that runs for months must roll over. None: one file for the whole run.
    segment_s: float | None = Field(default=600.0, ge=1.0)
    results_log: Path | None = None  # JSON lines, one per frame
    mjpeg_port: int | None = Field(default=None, ge=0, le=65535)  # 0 = any free port
    mjpeg_host: str = "127.0.0.1"
    # How long a frame waits for its own result: at least hold_s, longer when results come later
    # (their recent 90th percentile), up to max_hold_s. A frame without its result is shown bare.
    hold_s: float = Field(default=0.5, ge=0.0)
    max_hold_s: float = Field(default=3.0, ge=0.0)
    idle_exit_s: float = Field(default=3.0, gt=0.0)  # after every camera ended


class MetricsConfig(StrictModel):
    base_port: int | None = Field(default=None, ge=1024, le=65000)  # None: no HTTP endpoint
    host: str = "127.0.0.1"


class SupervisorConfig(StrictModel):
    """How `facestream run` treats a stage process that dies."""

    max_restarts: int = Field(default=5, ge=0)  # within window_s; then the service stops
    window_s: float = Field(default=60.0, gt=0)
    backoff_s: float = Field(default=0.5, ge=0)  # first restart delay, doubled each time
    max_backoff_s: float = Field(default=5.0, ge=0)
    ready_timeout_s: float = Field(default=120.0, gt=0)  # model loading may take a while
    log_dir: Path | None = None  # stage logs go here instead of the terminal


class EventsConfig(StrictModel):
    """The events stage: one row per person-track per camera ("sightings"), with a snapshot each."""

    data_dir: Path = Path("facestream-data")  # the SQLite file, snapshots and the face library
    # None: SQLite (WAL) at data_dir/events.db. postgresql://user:password@host/db for several hosts.
    database_url: str | None = None
    retention_days: float = Field(default=30.0, gt=0)  # older sightings and their snapshots go
    max_snapshot_bytes: int = Field(default=1 << 30, ge=0)  # beyond it the oldest snapshots go
    end_after_s: float = Field(default=3.0, gt=0)  # a sighting ends when its face is unseen this long
    flush_s: float = Field(default=1.0, gt=0)  # how often live sightings are written
    snapshot_side: int = Field(default=192, ge=32, le=1024)  # longest side of a snapshot, pixels

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
            raise ValueError("events.database_url must start with postgresql:// or sqlite:///")
        return url


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebConfig(StrictModel):
    """The operator's console (HTTP API and page); needs the events stage and overlay's MJPEG."""

    host: str = "127.0.0.1"  # any other address needs a token (here or FACESTREAM_WEB_TOKEN)
    port: int = Field(default=8000, ge=1, le=65535)
    token: str | None = Field(default=None, min_length=16)  # bearer token for every call but health
    read_token: str | None = Field(default=None, min_length=16)  # may only read (GET)
    max_upload_bytes: int = Field(default=8 << 20, ge=1024)
    max_upload_pixels: int = Field(default=25_000_000, ge=4096)


class PipelineConfig(StrictModel):
    cameras: list[CameraConfig] = Field(min_length=1)
    bus: BusConfig = BusConfig()
    detect: DetectConfig = DetectConfig()
    embed: EmbedConfig = EmbedConfig()
    match: MatchConfig
    overlay: OverlayConfig = OverlayConfig()
    metrics: MetricsConfig = MetricsConfig()
    supervisor: SupervisorConfig = SupervisorConfig()
    events: EventsConfig | None = None  # None: no events stage (a web section turns it on)
    web: WebConfig | None = None  # None: no console

    @model_validator(mode="before")
    @classmethod
    def _web_needs_events(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("web") is not None and data.get("events") is None:
            return {**data, "events": {}}
        return data

    @model_validator(mode="after")
    def _web_needs_live_view(self) -> PipelineConfig:
        if self.web is not None and not self.overlay.mjpeg_port:
            raise ValueError(
                "web: the console shows overlay's live view: set overlay.mjpeg_port to a fixed port"
            )
        return self

    @field_validator("cameras")
    @classmethod
    def _unique_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        ids = [c.id for c in cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique, repeated: {', '.join(dupes)}")
        return cameras

    @model_validator(mode="after")
    def _ports_apart(self) -> PipelineConfig:
        check_ports(self)  # bus.topology owns every port; ValueError names the two users
        return self

    @model_validator(mode="after")
    def _one_host_per_process(self) -> PipelineConfig:
        counts = {"capture": len(self.cameras), "embed": self.embed.workers, "match": 1}
        for stage, where in self.bus.hosts.items():
            if isinstance(where, list) and len(where) != counts[stage]:
                raise ValueError(
                    f"bus.hosts.{stage} lists {len(where)} address(es) for {counts[stage]} "
                    f"{stage} process(es): give one address, or one per process"
                )
        return self


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{where}: {err['msg']}")
    return "; ".join(lines)


def parse_config(data: object, source: str = "config") -> PipelineConfig:
    if not isinstance(data, dict):
        raise FacestreamError(f"{source}: expected a mapping at the top level")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise FacestreamError(f"{source}: {_describe(exc)}") from exc


def _yaml_where(exc: yaml.YAMLError) -> str:
    """' at line L, column C: problem' on one line (PyYAML's own message spans several)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    where = "" if mark is None else f" at line {mark.line + 1}, column {mark.column + 1}"
    return where + (f": {problem}" if problem else "")


def load_config(path: Path) -> PipelineConfig:
    """Read and validate a YAML config; every problem becomes a one-line FacestreamError."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise FacestreamError(f"cannot read config {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FacestreamError(f"{path}: not valid YAML{_yaml_where(exc)}") from exc
    return parse_config(data, str(path))


def dump_config(config: PipelineConfig, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
