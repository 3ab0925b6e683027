"""What every host task does first: load hosts.toml, resolve -H, pick projects. No SSH here."""

from __future__ import annotations

from dataclasses import replace

from fabric import Connection

from ayna_fab.config import model as config, rules, targets
from ayna_fab.config.model import Config, Host, Project
from ayna_fab.errors import UsageError

PARALLEL_HELP = "hosts worked on at once (default: hosts.toml's parallel, else 8)"


def given_target(c) -> str | None:
    """The -H value Fabric was given for this call (it calls a task once per -H entry)."""
    return c.original_host if isinstance(c, Connection) else None


def load() -> Config:
    return config.load()


def with_parallel(cfg: Config, parallel: str | int | None) -> Config:
    """cfg with --parallel (when given) in place of hosts.toml's `parallel`: the one place the
    setting is decided; connections, the runner and the queries take cfg.defaults.parallel."""
    if parallel is None:
        return cfg
    try:
        hosts = rules.parallel(int(str(parallel)), rules.At("--parallel", "--parallel", config.DEFAULT_PARALLEL))
    except (ValueError, rules.Invalid):
        raise UsageError(f"--parallel {parallel!r}: give a whole number of hosts, 1 or more", step="options",
                         hint=f"--parallel {config.DEFAULT_PARALLEL}") from None
    return replace(cfg, defaults=replace(cfg.defaults, parallel=hosts))


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
