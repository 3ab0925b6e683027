"""The sandbox's own SSH identity, the hosts' keys, and the known_hosts that lists them.

Host keys are made on the controller before a host boots, so known_hosts is right
before the first connection and strict checking never has to trust on first use.
"""

from __future__ import annotations

from pathlib import Path

from ayna_fab import local

from . import commands


def ensure_keypair(path: Path, comment: str) -> Path:
    """Create an ed25519 keypair at path unless one is there; return the public key's path."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        local.run(commands.ssh_keygen(path, comment), step="sandbox keys")
    return path.with_suffix(".pub")


def known_hosts_line(hostname: str, port: int, pubkey_text: str) -> str:
    key_type, key_b64 = pubkey_text.split()[:2]
    name = hostname if port == 22 else f"[{hostname}]:{port}"
    return f"{name} {key_type} {key_b64}"


def write_known_hosts(path: Path, lines: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.replace(path)
