"""`facestream run` removes the per-pid run dir it made in $TMPDIR (ready and *.state files) on
every way out, and never removes a folder the user configured (bus.ipc_dir)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from deploy.assets import carphone_video
from tests.conftest import REPO, facestream, free_base_port

RUN_DIRS = "facestream-run-*"


def _setup(
    tmp_path: Path, photos: Path, bus: dict[str, object], loop: bool = False, max_restarts: int = 5
) -> tuple[Path, Path]:
    """Enroll one face, write a one-camera config; return (config, the child's TMPDIR).

    The camera plays 5 frames as fast as it can and the run ends by itself, or (`loop`) it plays
    the clip in real time forever."""
    gallery = tmp_path / "gallery.fsg"
    enrolled = facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"])
    assert enrolled.returncode == 0, enrolled.stderr
    camera = {"loop": True} if loop else {"realtime": False, "max_frames": 5}
    config = {
        "cameras": [{"id": "cam0", "source": str(carphone_video()), **camera}],
        "bus": bus,
        "match": {"gallery": str(gallery)},
        "overlay": {"output": str(tmp_path / "out.mp4")},
        "supervisor": {"log_dir": str(tmp_path / "logs"), "max_restarts": max_restarts},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    return path, tmpdir


def _start(config: Path, tmpdir: Path, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    def background_job() -> None:  # what a shell does to `facestream run &` in a script
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "run", str(config)],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmpdir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=background_job if sigint_ignored else None,
    )


def _wait_for_run_dir(proc: subprocess.Popen[str], tmpdir: Path, ready: str) -> Path:
    """The run dir the supervisor made in `tmpdir`, once stage file `ready` is in it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list(tmpdir.glob(RUN_DIRS))
        if found and (found[0] / ready).exists():
            assert found[0].name == f"facestream-run-{proc.pid}"
            return found[0]
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.02)
    raise AssertionError(f"no {RUN_DIRS} with {ready} in {tmpdir}")


def _finish(proc: subprocess.Popen[str]) -> str:
    try:
        return proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stage_pid(supervisor_pid: int, name: str) -> int:
    out = subprocess.run(["pgrep", "-P", str(supervisor_pid)], capture_output=True, text=True).stdout
    for pid in map(int, out.split()):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"stage" in cmdline and name.encode() in cmdline:
            return pid
    raise AssertionError(f"no {name} stage under pid {supervisor_pid}")


def test_run_that_ends_by_itself_removes_its_run_dir(tmp_path: Path, photos: Path) -> None:
    config, tmpdir = _setup(tmp_path, photos, {"transport": "tcp", "base_port": free_base_port()})
    proc = _start(config, tmpdir)
    _wait_for_run_dir(proc, tmpdir, "overlay-0.ready")  # the run really used $TMPDIR
    err = _finish(proc)
    assert proc.returncode == 0, err[-3000:]
    assert list(tmpdir.glob(RUN_DIRS)) == []


def test_sigterm_removes_the_run_dir(tmp_path: Path, photos: Path) -> None:
    config, tmpdir = _setup(tmp_path, photos, {"transport": "tcp", "base_port": free_base_port()}, loop=True)
    proc = _start(config, tmpdir)
    run_dir = _wait_for_run_dir(proc, tmpdir, "capture-0.ready")
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc)
    assert proc.returncode == 0, err[-3000:]
    assert not run_dir.exists() and list(tmpdir.glob(RUN_DIRS)) == []


def test_sigint_stops_a_run_started_as_a_background_job(tmp_path: Path, photos: Path) -> None:
    config, tmpdir = _setup(tmp_path, photos, {"transport": "tcp", "base_port": free_base_port()}, loop=True)
    proc = _start(config, tmpdir, sigint_ignored=True)
    run_dir = _wait_for_run_dir(proc, tmpdir, "capture-0.ready")
    proc.send_signal(signal.SIGINT)
    err = _finish(proc)
    assert proc.returncode == 0 and "stopping on request" in err, err[-3000:]
    assert not run_dir.exists()


def test_stage_over_its_restart_budget_removes_the_run_dir(tmp_path: Path, photos: Path) -> None:
    config, tmpdir = _setup(
        tmp_path, photos, {"transport": "tcp", "base_port": free_base_port()}, loop=True, max_restarts=0
    )
    proc = _start(config, tmpdir)
    run_dir = _wait_for_run_dir(proc, tmpdir, "capture-0.ready")
    os.kill(_stage_pid(proc.pid, "match"), signal.SIGKILL)
    err = _finish(proc)
    assert proc.returncode != 0 and "restart budget" in err, err[-3000:]
    assert not run_dir.exists() and list(tmpdir.glob(RUN_DIRS)) == []


def test_configured_ipc_dir_is_left_in_place(tmp_path: Path, photos: Path) -> None:
    ipc_dir = tmp_path / "ipc"
    ipc_dir.mkdir()
    (ipc_dir / "keep.txt").write_text("the user's file")
    config, tmpdir = _setup(tmp_path, photos, {"transport": "ipc", "ipc_dir": str(ipc_dir)})
    run = facestream(["run", str(config)], env={**os.environ, "TMPDIR": str(tmpdir)})
    assert run.returncode == 0, run.stderr[-3000:]
    assert ipc_dir.is_dir() and (ipc_dir / "keep.txt").read_text() == "the user's file"
    assert list(tmpdir.glob(RUN_DIRS)) == []  # no private folder was made either
