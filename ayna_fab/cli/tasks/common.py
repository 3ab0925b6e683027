"""What every host task does first: load hosts.toml, resolve -H, pick projects. No SSH here."""

from __future__ import annotations

from fabric import Connection

from ayna_fab.config import model as config, targets
from ayna_fab.config.model import Config, Host, Project


def given_target(c) -> str | None:
    """The -H value Fabric was given for this call (it calls a task once per -H entry)."""
    return c.original_host if isinstance(c, Connection) else None


def load() -> Config:
    return config.load()


def hosts(c, cfg: Config, *, all_when_none: bool = False) -> list[Host]:
    """-H's hosts; without -H the default target, or every host for read-only tasks."""
    target = given_target(c)
    if target is None and all_when_none:
        return list(cfg.hosts.values())
    return targets.resolve(cfg, targets.target_or_default(cfg, target))


def projects_on(cfg: Config, host: Host, project: str | None) -> list[Project]:
    """--project if given (the host must carry it), else every project the host carries."""
    if project is not None:
        return [targets.project_for(cfg, host, project)]
    return [targets.staged(cfg, host, cfg.projects[name]) for name in host.projects]


def jobs(c, cfg: Config, project: str | None) -> list[tuple[Host, Project]]:
    """(host, project) pairs of -H: the project is implied when the host carries just one."""
    return [(h, targets.project_for(cfg, h, project)) for h in hosts(c, cfg)]
