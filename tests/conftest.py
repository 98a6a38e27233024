from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PHOTOS = REPO / "deploy" / "demo_assets" / "photos"


@pytest.fixture(scope="session")
def photos() -> Path:
    return PHOTOS


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One converted-model cache for the whole run (and for the stage processes it starts)."""
    os.environ.setdefault("FACESTREAM_CACHE", str(tmp_path_factory.mktemp("model-cache")))


def free_base_port(span: int = 302, avoid: Sequence[int] = ()) -> int:
    """A base port whose facestream ports (bus.topology, two processes per stage) are free right now,
    and whose block does not overlap the blocks of the bases in `avoid` (the config refuses that)."""
    from bus.topology import HOPS, STAGES

    offsets = {h.port_offset + i for h in HOPS.values() for i in range(2 if h.per_process else 1)}
    offsets |= {s.metrics_offset + i for s in STAGES.values() for i in range(min(2, s.max_processes))}
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + span >= 65000 or any(abs(base - other) <= span for other in avoid):
            continue
        ok = True
        for offset in sorted(offsets):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", base + offset))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free port block")


def facestream(
    args: Sequence[str], timeout: float = 300, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        **kwargs,  # type: ignore[call-overload]
    )
