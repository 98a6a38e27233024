"""`facestream keys DIR`: CURVE key pairs that zmq can load, secrets 0600, a config snippet that
validates, and no silent overwrite of existing keys."""

from __future__ import annotations

import stat
from pathlib import Path

import yaml
import zmq.auth

from bus.config import BusConfig
from tests.conftest import facestream


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_written_owner_only_and_load(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    proc = facestream(["keys", str(folder)])
    assert proc.returncode == 0, proc.stderr
    for name in ("server", "client"):
        public, secret = zmq.auth.load_certificate(str(folder / f"{name}.key_secret"))
        assert secret is not None and len(secret) == 40 and len(public) == 40
        assert zmq.auth.load_certificate(str(folder / f"{name}.key"))[0] == public
        assert _mode(folder / f"{name}.key_secret") == 0o600
        assert _mode(folder / f"{name}.key") == 0o644
    assert _mode(folder) == 0o700
    assert (folder / "authorized_clients" / "client.key").read_bytes() == (folder / "client.key").read_bytes()

    snippet = proc.stdout.split("add to the pipeline config:\n", 1)[1]
    bus = BusConfig.model_validate(yaml.safe_load(snippet)["bus"])
    assert bus.curve is not None and bus.curve.server_secret == (folder / "server.key_secret").resolve()
    assert bus.curve.authorized_clients == (folder / "authorized_clients").resolve()


def test_existing_keys_are_kept_and_clients_added(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    assert facestream(["keys", str(folder)]).returncode == 0
    server = (folder / "server.key_secret").read_bytes()
    client = (folder / "client.key_secret").read_bytes()

    again = facestream(["keys", str(folder)])
    assert again.returncode == 2
    assert (
        again.stderr.strip().startswith("facestream: error:")
        and "already has a client key pair" in again.stderr
    )
    assert (folder / "client.key_secret").read_bytes() == client

    laptop = facestream(["keys", str(folder), "--client", "laptop"])
    assert laptop.returncode == 0, laptop.stderr
    assert (folder / "server.key_secret").read_bytes() == server
    assert sorted(p.name for p in (folder / "authorized_clients").iterdir()) == ["client.key", "laptop.key"]
    assert _mode(folder / "laptop.key_secret") == 0o600

    for bad in ("server", "../escape", ".hidden", ""):
        proc = facestream(["keys", str(folder), "--client", bad])
        assert proc.returncode == 2, (bad, proc.stderr)
        assert "invalid key name" in proc.stderr or "server's key pair" in proc.stderr, (bad, proc.stderr)
    assert not (tmp_path / "escape.key").exists()
