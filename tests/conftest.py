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


def free_base_port(span: int = 302) -> int:
    """A base port whose whole facestream port block is free right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + span >= 65000:
            continue
        ok = True
        for offset in (0, 1, 100, 101, 200, 201, 300, 301):
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
