"""What Caddy serves for a project on a host: its hosts.toml settings, resolved once.

A host's `domains` for a project replace the project's own there (staging apart from
production); `tls` and `tls_email` come from the project, else the host (which carries
[defaults]). No domains means no site: the project is not behind Caddy on that host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ayna_fab.config import registry
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Config, Host, Project


@dataclass(frozen=True)
class Site:
    """One project's site on one host, all that the site file is rendered from."""

    project: str
    domains: tuple[str, ...]
    api_domains: tuple[str, ...]
    api_prefix: str | None
    tls: str                          # "auto" | "internal" | "off"
    email: str | None
    root: str                         # the project's directory on the host
    static_dir: str                   # STATIC_ROOT inside a release
    web_port: int | None
    api_port: int | None
    media_port: int                   # the media server's, the one reader of shared/media (docs/proxy.md)
    health: Mapping[str, str] = field(default_factory=dict)   # service -> path the app answers
    headers: Mapping[str, str] = field(default_factory=dict)
    allow: tuple[str, ...] = ()       # addresses that pass maintenance

    @property
    def all_domains(self) -> tuple[str, ...]:
        return self.domains + self.api_domains

    @property
    def maintenance_dir(self) -> str:
        return maintenance_dir(self.root)

    def health_paths(self) -> tuple[str, ...]:
        """The health URLs as Caddy sees them: they pass maintenance, so `fab validate` and load
        balancers still see the app."""
        paths = []
        if "web" in self.health and self.web_port is not None:
            paths.append(self.health["web"])
        if "api" in self.health and self.api_port is not None:
            if self.api_prefix:
                paths.append(self.api_prefix + self.health["api"])
            if self.api_domains:
                paths.append(self.health["api"])
        return tuple(dict.fromkeys(paths))


def maintenance_dir(root: str) -> str:
    """Where the maintenance page lives while the switch is on (its presence is the switch)."""
    return f"{root}/maintenance"


PAGE = "page.html"


def site(config: Config, host: Host, project: Project) -> Site | None:
    """`project`'s site on `host`, or None when it has no domains there."""
    domains = tuple(host.domains.get(project.name, project.domains or ()))
    api_domains = tuple(project.api_domains or ())
    if not domains and not api_domains:
        return None
    services = project.services
    return Site(
        project=project.name, domains=domains, api_domains=api_domains, api_prefix=project.api_prefix,
        tls=project.tls or host.tls, email=project.tls_email or host.tls_email,
        root=Layout.of(config, project).root, static_dir=project.static_dir,
        web_port=project.port("web") if "web" in services else None,
        api_port=project.port("api") if "api" in services else None,
        media_port=project.port_base + registry.MEDIA_OFFSET,
        health=dict(project.health), headers=dict(project.headers), allow=tuple(project.maintenance_allow or ()))


def sites(config: Config, host: Host) -> list[Site]:
    """Every site on `host`, in its projects' order."""
    return [s for s in (site(config, host, config.projects[p]) for p in host.projects) if s is not None]
