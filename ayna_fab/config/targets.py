"""Turn a TARGET (-H) into the hosts it names, and pick the project on a host.

Names are looked up in hosts.toml only: a typo fails here with the list of
known names instead of falling through to a DNS lookup or an SSH attempt to
whatever the typo happens to resolve to. Nothing here touches the network.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from ayna_fab.config.model import Config, Host, Project
from ayna_fab.errors import ConfigError, UsageError
from ayna_fab.remote import ssh

H = TypeVar("H")


def known_targets(config: Config) -> str:
    """'hosts: a, b; groups: c' - the text every "unknown target" error shows."""
    text = "hosts: " + ", ".join(config.hosts)
    return text + ("; groups: " + ", ".join(config.groups) if config.groups else "")


def resolve(config: Config, target: str) -> list[Host]:
    """Hosts named by `target` (hosts, groups, comma-separated), in order, each once."""
    names = [name.strip() for name in target.split(",")]
    if not any(names) or not all(names):
        raise ConfigError(f"{config.path}: target {target!r} has an empty name",
                          hint="give host or group names separated by single commas, "
                               f"e.g. -H prod,staging ({known_targets(config)})")
    hosts: dict[str, Host] = {}
    for name in names:
        for host in _expand(config, name, ()):
            hosts.setdefault(host.name, host)
    return list(hosts.values())


def _expand(config: Config, name: str, trail: tuple[str, ...]) -> Iterator[Host]:
    if name in config.hosts:
        yield config.hosts[name]
    elif name in config.groups:
        if name in trail:  # the loader rejects cycles; this guards hand-built Configs
            raise ConfigError(f"{config.path}: groups form a cycle: "
                              + " -> ".join((*trail, name)), hint="remove one membership")
        for member in config.groups[name]:
            yield from _expand(config, member, (*trail, name))
    else:
        close = difflib.get_close_matches(name, [*config.hosts, *config.groups], n=1)
        raise ConfigError(
            f"{config.path}: unknown target {name!r}; known {known_targets(config)}",
            hint=(f"did you mean {close[0]!r}? " if close else "")
            + "-H takes a host or group name from hosts.toml, or a comma-separated list")


def target_or_default(config: Config, target: str | None) -> str:
    """`target` if given, else defaults.default_target, else a ConfigError listing targets.

    For tasks that change hosts: without -H they must never guess "everything".
    """
    if target and target.strip():
        return target
    if config.default_target:
        return config.default_target
    raise ConfigError(
        f"{config.path}: no target given and defaults.default_target is not set; "
        f"known {known_targets(config)}",
        hint="pass -H TARGET, or set default_target under [defaults]")


def project_for(config: Config, host: Host, project: str | None) -> Project:
    """The project to act on for `host`, its stage applied: implied when it carries one, else --project."""
    if project is None:
        if not host.projects:
            raise UsageError("host carries no project", host=host.name,
                             hint="add the project to the host's projects in hosts.toml")
        if len(host.projects) == 1:
            return staged(config, host, config.projects[host.projects[0]])
        raise UsageError(f"host carries several projects: {', '.join(host.projects)}",
                         host=host.name, hint="pass --project with one of them")
    if not host.carries(project):
        raise UsageError(f"host does not carry project {project!r}; it carries: "
                         + ", ".join(host.projects), host=host.name,
                         hint="pass --project with one of them, or choose another -H")
    return staged(config, host, config.projects[project])


def endpoint(config: Config, host: Host, *, admin: bool = False) -> ssh.Endpoint:
    """How to log in to host: as the deploy user with the deploy key, or (setup only) as the admin
    user with admin_identity_file (identity_file when there is no admin key)."""
    identity = (host.admin_identity_file or host.identity_file) if admin else host.identity_file
    return ssh.Endpoint(name=host.name, hostname=host.hostname, port=host.port,
                        user=host.admin_user if admin else host.user,
                        identity_file=identity, known_hosts=host.known_hosts,
                        timeout=host.connect_timeout, gateway=gateway_endpoint(config, host))


def gateway_endpoint(config: Config, host: Host) -> ssh.Endpoint | None:
    """host's bastion (hosts.toml `gateway`), logged in to as its own `user` with its own key and
    known_hosts, whoever logs in to host behind it; a bastion may have a gateway of its own."""
    if host.gateway is None:
        return None
    return endpoint(config, config.hosts[host.gateway])


def database_host(project: Project, hosts: Sequence[H]) -> H:
    """The host that acts for a project's database, which its hosts share when it sets migrate_host:
    that host if it is among `hosts`, else the first of them. Hosts or one operation's targets."""
    return next((h for h in hosts if h.name == project.migrate_host), hosts[0])


def once_per_database(jobs: list[tuple[Host, Project]], say: Callable[[str], None]) -> list[tuple[Host, Project]]:
    """Jobs for work on a database (migrate, backup, restore): a project with migrate_host shares one
    database across its hosts, so it is done once, on its database_host; other projects, and hosts
    with a database of their own (database = "own"), on each host."""
    kept, told = [], set()
    for host, proj in jobs:
        if not proj.migrate_host or database_of(host, proj) == "own":
            kept.append((host, proj))
            continue
        chosen = database_host(proj, [h for h, p in jobs if p.name == proj.name and database_of(h, p) != "own"])
        if host is chosen:
            kept.append((host, proj))
        elif proj.name not in told:
            told.add(proj.name)
            say(f"[{host.name}] {proj.name} shares its database with {chosen.name} (migrate_host): "
                f"done there once")
    return kept


def stage(config: Config, host: Host, project: Project) -> str:
    """The env `project` runs with on `host`: the stage that names the host (or a group holding it),
    else the project's env. The loader has made sure at most one stage names it."""
    for env, names in project.stages.items():
        if any(h.name == host.name for name in names for h in _expand(config, name, ())):
            return env
    return project.env


def staged(config: Config, host: Host, project: Project) -> Project:
    """`project` as `host` runs it: its stage's env and env file (env_files[env]; no file for a stage
    that names none, and env_command only for the project's own env, so another stage's secrets
    are never uploaded by mistake). Name, ports and units stay the project's own."""
    env = stage(config, host, project)
    own = project.env_file if env == project.env else None
    env_file = project.env_files.get(env, own)
    if env == project.env and env_file == project.env_file:
        return project
    command = project.env_command if env == project.env else None   # it gives the project's own env's
    return dataclasses.replace(project, env=env, env_file=env_file, env_command=command)


def database_of(host: Host, project: Project) -> str:
    """"shared" (the target's hosts share one database) or "own" (each host has its own): the
    project's setting, else the host's (which carries [defaults])."""
    return project.database or host.database
