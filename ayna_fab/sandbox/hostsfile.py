"""The hosts.toml fragment describing running sandbox hosts, for ayna-fab to be pointed at."""

from __future__ import annotations

from pathlib import Path


def render(hosts: list[tuple[str, int]], identity_file: Path, known_hosts: Path) -> str:
    """hosts: (name, ssh port) pairs. Every sandbox host answers on 127.0.0.1."""
    out = [
        "# Written by `fab sandbox.up`: the running sandbox hosts.",
        f"# Use it with: AYNA_FAB_HOSTS={identity_file.parent / 'hosts.toml'} fab ...",
        "[defaults]",
        f'identity_file = "{identity_file}"',
        f'known_hosts = "{known_hosts}"',
        "",
    ]
    for name, port in hosts:
        out += [f"[hosts.{name}]", 'hostname = "127.0.0.1"', f"port = {port}", ""]
    out += ["[groups]", "sandbox = [" + ", ".join(f'"{n}"' for n, _ in hosts) + "]", ""]
    return "\n".join(out)
