"""`facestream keys DIR`: CURVE key pairs for links between hosts, secrets readable by the owner only.

The folder gets a server pair (the binding side of every hop), a client pair, and an
`authorized_clients/` folder holding the public key of every client allowed to connect.
Running it again adds a client (`--client NAME`) and keeps the existing keys.
"""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq.auth

from bus.errors import FacestreamError

AUTHORIZED = "authorized_clients"
SERVER = "server"


@dataclass(frozen=True)
class KeyPair:
    public: Path
    secret: Path


def _create_pair(folder: Path, name: str) -> KeyPair:
    """Write NAME.key (0644) and NAME.key_secret (0600); the secret is never world-readable."""
    old = os.umask(0o077)
    try:
        public, secret = zmq.auth.create_certificates(str(folder), name)
    except OSError as exc:
        raise FacestreamError(f"cannot write CURVE keys in {folder}: {exc.strerror or exc}") from exc
    finally:
        os.umask(old)
    os.chmod(secret, 0o600)
    os.chmod(public, 0o644)
    return KeyPair(Path(public), Path(secret))


def _existing(folder: Path, name: str) -> KeyPair | None:
    pair = KeyPair(folder / f"{name}.key", folder / f"{name}.key_secret")
    if pair.public.exists() and pair.secret.exists():
        return pair
    if pair.public.exists() or pair.secret.exists():
        raise FacestreamError(
            f"{folder} holds half of the {name!r} key pair: remove it or pick another folder"
        )
    return None


def check_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise FacestreamError(f"invalid key name {name!r}: use letters, digits, '-', '_' or '.'")
    if name == SERVER:
        raise FacestreamError(f"{SERVER!r} is the server's key pair; give the client another name")
    return name


def make_keys(folder: Path, client: str = "client") -> tuple[KeyPair, KeyPair]:
    """Create (or reuse) the server pair and create one new client pair, authorized at once."""
    check_name(client)
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (folder / AUTHORIZED).mkdir(exist_ok=True, mode=0o700)
    except OSError as exc:
        raise FacestreamError(f"cannot create key folder {folder}: {exc.strerror or exc}") from exc
    if _existing(folder, client) is not None:
        raise FacestreamError(
            f"{folder} already has a client key pair {client!r}: pick another --client name"
        )
    server = _existing(folder, SERVER) or _create_pair(folder, SERVER)
    pair = _create_pair(folder, client)
    shutil.copyfile(pair.public, folder / AUTHORIZED / pair.public.name)
    return server, pair


def config_snippet(server: KeyPair, client: KeyPair, folder: Path) -> str:
    return "\n".join(
        [
            "bus:",
            "  curve:",
            f"    server_secret: {server.secret.resolve()}  # only on hosts that bind (capture, embed, match)",
            f"    server_public: {server.public.resolve()}",
            f"    client_secret: {client.secret.resolve()}",
            f"    client_public: {client.public.resolve()}",
            f"    authorized_clients: {(folder / AUTHORIZED).resolve()}",
        ]
    )


def cmd_keys(args: argparse.Namespace) -> int:
    server, client = make_keys(args.folder, args.client)
    print(f"server key pair: {server.public} (public), {server.secret} (secret, 0600)")
    print(f"client key pair {args.client!r}: {client.public} (public), {client.secret} (secret, 0600)")
    print(f"authorized clients: {args.folder / AUTHORIZED}")
    print("add to the pipeline config:")
    print(config_snippet(server, client, args.folder))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="create CURVE keys for encrypted, authenticated links between hosts")
    p.add_argument("folder", type=Path, help="where the key files go (created 0700)")
    p.add_argument("--client", default="client", help="name of the client key pair to add (default: client)")
    p.set_defaults(func=cmd_keys)
