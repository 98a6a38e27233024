"""The gallery file under crashes and bad input, through the real `facestream enroll` process:
kill -9 while enrolling a big folder loses nothing enrolled before; a corrupt or foreign-model
gallery is refused and left byte for byte as it was; new files are owner-only whatever the umask."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from faces.images import read_image
from match.gallery import Gallery
from tests.conftest import REPO, facestream

PEOPLE = ("macron", "ardern", "obama", "sunak", "biden")


def _big_folder(photos: Path, folder: Path, copies: int) -> int:
    """`copies` photos of each person, as name/NN.jpg: real photos, each copy turned by its own
    small angle, because enroll skips a photo it has enrolled already (the same pixels)."""
    count = 0
    for person in PEOPLE:
        sources = [read_image(p) for p in sorted(photos.glob(f"{person}_*.jpg"))]
        (folder / person).mkdir(parents=True)
        for i in range(copies):
            image = sources[i % len(sources)]
            height, width = image.shape[:2]
            turn = cv2.getRotationMatrix2D((width / 2, height / 2), 0.5 * (i + 1), 1.0)
            turned = cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REFLECT)
            assert cv2.imwrite(str(folder / person / f"{i:03d}.jpg"), turned)
            count += 1
    return count


class Enrolling:
    """`facestream enroll` in a child process; follows its progress bar on stderr."""

    def __init__(self, gallery: Path, folder: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "enroll", str(gallery), str(folder)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.done = 0
        self.total = 0
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        assert self.proc.stderr is not None
        buffer = b""
        while chunk := self.proc.stderr.read1(4096):  # type: ignore[attr-defined]
            buffer = (buffer + chunk)[-400:]
            found = re.findall(rb"enrolling:.*?(\d+)/(\d+)", buffer)
            if found:
                self.done, self.total = int(found[-1][0]), int(found[-1][1])

    def kill_when(self, done: int, timeout: float = 180) -> int:
        deadline = time.monotonic() + timeout
        while self.done < done:
            assert self.proc.poll() is None, "enrollment ended before it could be killed"
            assert time.monotonic() < deadline, "enrollment made no progress"
            time.sleep(0.01)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        return self.done


def _snapshot(path: Path) -> tuple[bytes, int, list[str], np.ndarray]:
    g = Gallery.load(path)
    return path.read_bytes(), stat.S_IMODE(path.stat().st_mode), g.names, g.vectors_of(g.names[0])


def test_kill_9_while_enrolling_keeps_the_previous_gallery(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "gallery.fsg"
    first = facestream(
        ["enroll", str(gallery), str(photos / "macron_1.jpg"), str(photos / "ardern_1.jpg"), "-q"]
    )
    assert first.returncode == 0, first.stderr
    before = _snapshot(gallery)
    assert before[1] == 0o600 and before[2] == ["ardern", "macron"]

    folder = tmp_path / "big"
    total = _big_folder(photos, folder, copies=24)
    run = Enrolling(gallery, folder)
    killed_at = run.kill_when(total // 3)
    assert run.proc.returncode == -signal.SIGKILL and killed_at < total

    after = _snapshot(gallery)
    assert after[0] == before[0], "the gallery file changed"
    assert after[1] == 0o600 and after[2] == before[2]
    assert np.array_equal(after[3], before[3])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".gallery")] == []

    # The same folder enrolled to the end adds everyone and keeps the earlier people.
    again = facestream(["enroll", str(gallery), str(folder), "-q"], timeout=600)
    assert again.returncode == 0, again.stderr
    done = Gallery.load(gallery)
    assert set(done.names) == {"ardern", "macron", *PEOPLE}
    assert done.counts()["macron"] == 25


def _kill_near_the_end(gallery: Path, folder: Path, photos_done: int, delay: float) -> None:
    """Enroll the folder and kill -9 `delay` s after `photos_done` photos (unless it ended)."""
    run = Enrolling(gallery, folder)
    deadline = time.monotonic() + 180
    while run.done < photos_done and run.proc.poll() is None:
        assert time.monotonic() < deadline, "enrollment made no progress"
        time.sleep(0.002)
    time.sleep(delay)  # not a wait for anything: the delay is where the kill lands
    if run.proc.poll() is None:
        run.proc.send_signal(signal.SIGKILL)
    run.proc.wait(30)


def test_kill_9_around_the_final_save_leaves_old_or_new_never_half(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "gallery.fsg"
    assert facestream(["enroll", str(gallery), str(photos / "sunak_1.jpg"), "-q"]).returncode == 0
    old = gallery.read_bytes()
    folder = tmp_path / "big"
    total = _big_folder(photos, folder, copies=12)
    # The kill moves across the save until it has landed on both sides of it: later after an
    # "old" outcome, earlier after a "new" one; the test fails unless both were seen.
    outcomes: list[tuple[int, float, str]] = []
    early, delay = 0, 0.0  # kill `early` photos before the end, `delay` s after that
    for _ in range(12):
        gallery.write_bytes(old)  # every try starts from the same one-person gallery
        _kill_near_the_end(gallery, folder, total - early, delay)
        g = Gallery.load(gallery)  # never corrupt
        assert stat.S_IMODE(gallery.stat().st_mode) == 0o600
        outcome = "old" if gallery.read_bytes() == old else "new"
        assert g.names == ["sunak"] if outcome == "old" else set(g.names) == {"sunak", *PEOPLE}
        outcomes.append((early, delay, outcome))
        if {o for *_, o in outcomes} == {"old", "new"}:
            break
        if outcome == "new":
            early, delay = early + 1, 0.0
        else:
            delay = delay * 2 if delay else 0.005
    assert {o for *_, o in outcomes} == {"old", "new"}, outcomes
    # A kill inside the save can leave its temp file behind (nothing runs after kill -9): it is
    # never read as the gallery, and it is owner-only like the gallery itself.
    for leftover in tmp_path.glob(".gallery.fsg.*.tmp"):
        assert stat.S_IMODE(leftover.stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["corrupt", "truncated", "foreign_model", "not_a_gallery"])
def test_bad_gallery_is_refused_and_never_overwritten(tmp_path: Path, photos: Path, kind: str) -> None:
    gallery = tmp_path / "gallery.fsg"
    assert facestream(["enroll", str(gallery), str(photos / "macron_1.jpg"), "-q"]).returncode == 0
    if kind == "corrupt":
        data = bytearray(gallery.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 64] = os.urandom(64)
        gallery.write_bytes(bytes(data))
    elif kind == "truncated":
        gallery.write_bytes(gallery.read_bytes()[:200])
    elif kind == "foreign_model":
        other = Gallery.create("someone-elses-model", 128, 0.4)
        other.add("zoe", np.random.default_rng(0).normal(size=(2, 128)).astype(np.float32))
        other.save(gallery)
    else:
        gallery.write_bytes(b"PK\x03\x04 this is some other zip or file")
    before = gallery.read_bytes()
    for command in (
        ["enroll", str(gallery), str(photos / "obama_1.jpg"), "-q"],
        ["identify", str(gallery), str(photos / "obama_2.jpg")],
    ):
        proc = facestream(command)
        assert proc.returncode == 2, proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("facestream: error:")]
        assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
        expected = "was built with model" if kind == "foreign_model" else "is not a facestream gallery"
        assert expected in errors[0], errors[0]
        assert gallery.read_bytes() == before


def test_new_gallery_is_owner_only_even_with_an_open_umask(tmp_path: Path, photos: Path) -> None:
    gallery = tmp_path / "sub" / "gallery.fsg"
    proc = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "enroll", str(gallery), str(photos / "biden_1.jpg"), "-q"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: os.umask(0),
    )
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(gallery.stat().st_mode) == 0o600
