"""Where uv (and pip, which installs uv) find packages on a host: hosts.toml's index settings
turned into uv's own configuration file and pip's options. Pure: setup writes the file, the
deploy's plan compares its digest, prepare points uv at it (UV_CONFIG_FILE).

A file given to uv with UV_CONFIG_FILE replaces every other uv configuration (the host's
/etc/uv/uv.toml, the user's), so what hosts.toml says is exactly what deploys use.
"""

from __future__ import annotations

import hashlib
import json

from ayna_fab.config.model import PackageIndex

SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"   # Debian's store, company CAs included


def uv_toml(index: PackageIndex) -> str | None:
    """uv.toml for the settings, or None when hosts.toml sets none (uv keeps the host's own config)."""
    if index.empty:
        return None
    lines = ["# Written by ayna-fab setup from hosts.toml (index_url, extra_index_urls, system_certs).",
             "# Deploys give it to uv as UV_CONFIG_FILE; edit hosts.toml and run setup again to change it."]
    if index.system_certs:
        lines.append("system-certs = true")
    for url in index.extra:                      # tried before the default index, in this order
        lines += ["", "[[index]]", f"url = {json.dumps(url)}"]
    if index.url:
        lines += ["", "[[index]]", f"url = {json.dumps(index.url)}", "default = true"]
    return "\n".join(lines) + "\n"


def digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def pip_args(index: PackageIndex) -> list[str]:
    """pip's options for setup's install of uv: the one index (never the extra ones: pip takes the
    highest version across all its indexes), and the system's certificates if asked."""
    args = ["--index-url", index.url] if index.url else []
    if index.system_certs:
        args += ["--cert", SYSTEM_CA_BUNDLE]
    return args
