"""A stage stopped by a signal ends within its stop deadline even when its stop hangs (a native
library's lock, the interpreter's exit): with its supervisor killed by -9 nothing else ends it.
Real processes and real signals; the hang is a lock that is never released."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.stage_thread import wait_for

_HANGS_ON_STOP = """
import sys, threading
from pathlib import Path
from bus.config import parse_config
from bus.stage import Stage

class HangsOnStop(Stage):
    name = "hangs"
    poll_ms = 20
    stop_deadline_s = 1.0

    def on_start(self):
        pass

    def on_stop(self):
        lock = threading.Lock()
        lock.acquire()
        lock.acquire()  # never given back: waits like a deadlocked native lock

config = parse_config({"cameras": [{"id": "a", "source": "x"}], "match": {"gallery": sys.argv[1]}})
stage = HangsOnStop(config, 0, ready_file=Path(sys.argv[2]))
stage.run()
"""


def test_a_stage_whose_stop_hangs_ends_after_its_deadline_with_its_stacks_in_the_log(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    root = Path(__file__).parents[3]
    proc = subprocess.Popen(
        [sys.executable, "-c", _HANGS_ON_STOP, str(tmp_path / "g.fsg"), str(ready)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        wait_for(ready.exists, 60, "the stage did not start")
        os.kill(proc.pid, signal.SIGTERM)
        asked = time.monotonic()
        _, err = proc.communicate(timeout=60)  # generous: a loaded machine; the deadline is 1 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert time.monotonic() - asked >= 1.0  # it did hang (the deadline ended it, not the stop)
    assert proc.returncode == 1, err
    assert "Timeout" in err and "on_stop" in err, err  # faulthandler's dump: where it hung
