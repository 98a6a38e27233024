"""Each stage process up or not, and its drops per camera and hop, from its Prometheus /metrics.

Scraped every SCRAPE_EVERY_S in a thread, so a health request never waits on a hung stage. With
metrics off (`metrics.base_port` unset) a stage's state is unknown (null), not guessed.
"""

from __future__ import annotations

import threading
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from bus.config import PipelineConfig
from bus.topology import START_ORDER, metrics_port, process_count

SCRAPE_EVERY_S = 2.0
TIMEOUT_S = 1.0


@dataclass
class StageHealth:
    name: str
    index: int
    port: int | None
    up: bool | None = None  # None: unknown (metrics off, or not scraped yet)
    drops: dict[tuple[str, str], float] = field(default_factory=dict)  # (camera, hop) -> count


def _host(config: PipelineConfig) -> str:
    host = config.metrics.host
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def scrape(url: str) -> tuple[bool, dict[tuple[str, str], float]]:
    """(up, drops by camera and hop) from one /metrics page; (False, {}) when it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
            text = resp.read().decode()
    except (OSError, ValueError):
        return False, {}
    up, drops = False, dict[tuple[str, str], float]()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "facestream_up":
                up = up or sample.value >= 1
            elif sample.name == "facestream_drops_total":
                key = (sample.labels.get("camera", ""), sample.labels.get("hop", ""))
                drops[key] = drops.get(key, 0.0) + sample.value
    return up, drops


class HealthScraper:
    def __init__(self, config: PipelineConfig) -> None:
        self.host = _host(config)
        self.stages = [
            StageHealth(name, i, metrics_port(config, name, i))
            for name in START_ORDER
            for i in range(process_count(config, name))
        ]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)

    def start(self) -> HealthScraper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            for stage in self.stages:
                if stage.port is None:
                    continue
                up, drops = scrape(f"http://{self.host}:{stage.port}/metrics")
                with self._lock:
                    stage.up, stage.drops = up, drops
            self._stop.wait(SCRAPE_EVERY_S)

    def snapshot(self) -> list[StageHealth]:
        with self._lock:
            return [StageHealth(s.name, s.index, s.port, s.up, dict(s.drops)) for s in self.stages]

    def drops_by_camera(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for stage in self.snapshot():
            for (camera, hop), value in stage.drops.items():
                if value > 0:
                    per = out.setdefault(camera, {})
                    per[hop] = per.get(hop, 0) + int(value)
        return out
