"""What `fab config` shows: the configuration as one host runs one project, [defaults], the host
and the project merged and the host's stage applied, with the local env file's secrets masked.
Pure but for reading the env file; nothing here connects."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ayna_fab.config import targets
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import HTTP_SERVICES, Config, Host, Project, package_index
from ayna_fab.config.schema import toml_value
from ayna_fab.hostprog import envfile

MASKED = "***"
# Keys of a project that hold what `stage`, `database` and `package_index` show resolved.
FOLDED = ("name", "stages", "env_files", "env_file", "database", "index_url", "extra_index_urls", "system_certs")
HOST_KEYS = ("hostname", "port", "user", "admin_user", "identity_file", "admin_identity_file", "known_hosts",
             "gateway", "connect_timeout")


def plain(value: Any) -> Any:
    """A value as JSON holds it: paths as text, tuples as lists, dataclasses as tables."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def masked_env(path: Path | None) -> dict[str, Any]:
    """The local env file's variables: a secret-named key's value as ***, and in every other value
    the secrets the host program masks (URL passwords, secret query parameters)."""
    if path is None:
        return {"path": None, "values": None, "problem": "no env file for this stage: setup uploads none"}
    try:
        values = envfile.read(path)
    except OSError as exc:
        return {"path": str(path), "values": None, "problem": exc.strerror or str(exc)}
    mask = envfile.Mask(envfile.secrets(values))
    return {"path": str(path), "problem": None,
            "values": {k: MASKED if envfile.SECRET_NAME_RE.search(k) else mask.text(v) for k, v in values.items()}}


def _or_default(config: Config, project: Project, name: str) -> Any:
    """A project key it shares with [defaults] is None when unset there: [defaults]' value applies."""
    value = getattr(project, name)
    return getattr(config.defaults, name) if value is None and hasattr(config.defaults, name) else value


def resolved(config: Config, host: Host, project: Project) -> dict[str, Any]:
    """One host's view of one project (`project` as hosts.toml has it: the stage is applied here)."""
    p = targets.staged(config, host, project)
    lay = Layout.of(config, p)
    settings = {f.name: plain(_or_default(config, p, f.name)) for f in dataclasses.fields(p) if f.name not in FOLDED}
    return {
        "host": host.name, "project": p.name, "stage": p.env,
        "connection": {k: plain(getattr(host, k)) for k in HOST_KEYS},
        "settings": settings,
        "database": targets.database_of(host, p),
        "package_index": plain(package_index(host, p)),
        "ports": {s: p.port(s) for s in HTTP_SERVICES if s in p.services},
        "on_host": {"root": lay.root, "env_file": lay.env_file, "keep_releases": config.defaults.keep_releases},
        "env_file": masked_env(p.env_file),
    }


def lines(view: dict[str, Any]) -> list[str]:
    """The view as `key = value` lines under a `[host: project (stage)]` header, for people."""
    out = [f"[{view['host']}: {view['project']} ({view['stage']})]"]

    def add(prefix: str, table: Mapping[str, Any]) -> None:
        for key, value in table.items():
            out.append(f"{prefix}{key} = " + ("(unset)" if value is None else toml_value(value)))

    add("connection.", view["connection"])
    add("", view["settings"])
    out.append(f"database = {toml_value(view['database'])}")
    add("package_index.", view["package_index"])
    add("port.", view["ports"])
    add("on_host.", view["on_host"])
    env = view["env_file"]
    out.append(f"env_file = {toml_value(env['path']) if env['path'] else '(unset)'}"
               + (f"   # {env['problem']}" if env["problem"] else ""))
    add("env.", env["values"] or {})
    return out
