"""The web process: the console's HTTP server (uvicorn, in a thread) beside a results subscriber.

The stage loop reads match's results for the live state (rate, faces on screen); the HTTP
handlers read that state, the events store, the gallery and overlay's live view.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import uvicorn
import zmq

from bus.config import PipelineConfig
from bus.errors import FacestreamError
from bus.records import Record
from bus.stage import Stage
from bus.topology import endpoint
from events.store import EventStore
from web.api import Console, create_app
from web.auth import resolve_tokens
from web.health import HealthScraper
from web.library import Library
from web.live import LiveState

START_TIMEOUT_S = 30.0
SHUTDOWN_GRACE_S = 2  # live streams never end by themselves


def listen(host: str, port: int) -> socket.socket:
    """Bind the console's socket here, so a taken port is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FacestreamError(f"cannot serve the console on {host}:{port}: {exc.strerror}") from exc
    sock.listen(128)
    return sock


def console_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class WebStage(Stage):
    name: ClassVar[str] = "web"

    def __init__(self, config: PipelineConfig, index: int = 0, ready_file: Path | None = None) -> None:
        super().__init__(config, index, ready_file)
        if config.web is None or config.events is None:
            raise FacestreamError("the web stage needs a `web:` section in the config")
        self.web_config, self.events_config = config.web, config.events
        self.live = LiveState([c.id for c in config.cameras])
        self.url = console_url(config.web.host, config.web.port)
        self.store: EventStore | None = None
        self.health: HealthScraper | None = None
        self.sock: socket.socket | None = None
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def on_start(self) -> None:
        cfg, events = self.web_config, self.events_config
        tokens = resolve_tokens(cfg)
        self.store = EventStore.open(events)  # creates or migrates it if events has not yet
        self.health = HealthScraper(self.config).start()
        ov = self.config.overlay
        mjpeg_host = "127.0.0.1" if ov.mjpeg_host in ("0.0.0.0", "::", "") else ov.mjpeg_host
        console = Console(
            config=self.config,
            tokens=tokens,
            store=self.store,
            library=Library(self.config, events.data_dir / "library"),
            live=self.live,
            health=self.health,
            mjpeg_url=f"http://{mjpeg_host}:{ov.mjpeg_port}",
        )
        self.sock = listen(cfg.host, cfg.port)
        server_config = uvicorn.Config(
            create_app(console),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        self.server = uvicorn.Server(server_config)
        thread = self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="http", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise FacestreamError(f"the console's HTTP server did not start on {cfg.host}:{cfg.port}")
            time.sleep(0.02)
        self.log.info("console on %s%s", self.url, " (token required)" if tokens.required else "")
        results = self.socket(zmq.SUB, connect=[endpoint(self.config.bus, "results").connect], subscribe=b"")
        self.inputs.append(results)

    def process(self, record: Record, source: zmq.Socket[Any]) -> None:
        self.metrics.inc_in(record.camera_id)
        self.live.observe(record)

    def on_stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(SHUTDOWN_GRACE_S + 5)
        if self.sock is not None:
            self.sock.close()
        if self.health is not None:
            self.health.stop()
        if self.store is not None:
            self.store.close()
