"""Where a project lives on a host (the standard's layout), in one place.

Setup creates it, validate checks it, deploys fill it: all three read these paths.
"""

from __future__ import annotations

from dataclasses import dataclass

from ayna_fab.config.model import Config, Project


@dataclass(frozen=True)
class Layout:
    base_dir: str
    project: str
    env: str                  # production | staging | dev

    @classmethod
    def of(cls, config: Config, project: Project) -> "Layout":
        return cls(config.defaults.base_dir, project.name, project.env)

    @property
    def root(self) -> str:
        return f"{self.base_dir}/{self.project}"

    @property
    def releases(self) -> str:
        return f"{self.root}/releases"

    @property
    def current(self) -> str:
        return f"{self.releases}/current"

    @property
    def shared(self) -> str:
        return f"{self.root}/shared"

    @property
    def env_file(self) -> str:
        return f"{self.shared}/.env.{self.env}"

    @property
    def logs(self) -> str:
        return f"{self.root}/logs"

    @property
    def venv(self) -> str:
        """A symlink through `current`, so the units' venv/bin paths follow every flip."""
        return f"{self.root}/venv"

    @property
    def uv_config(self) -> str:
        """uv's configuration from hosts.toml's index settings, written by setup (hostprog/plan.UV_CONFIG)."""
        return f"{self.root}/uv.toml"

    @property
    def uv_cache(self) -> str:
        """Shared by every release on the same filesystem, so uv can hard-link."""
        return f"{self.base_dir}/.uv-cache"

    def release(self, number: int) -> str:
        return f"{self.releases}/v{number}"

    def dirs(self, user: str, served: bool = False) -> list[tuple[str, str, str, str]]:
        """(path, owner, group, mode) of every directory, parents first.

        systemd reads shared/.env.{env} as root (EnvironmentFile=) and follows links, so no
        directory on the way to it is the deploy user's: the project's root and shared/ are root's,
        group-writable for the deploy user (its lock, journal and venv link; SQLite's files) with the
        sticky bit, so it can make names there but never rename or remove one it does not own.

        `served`: Caddy serves the project's media, so others may pass through shared/ (not list
        it: the env file and backups keep their own modes) and read shared/media, which the site
        serves to anyone anyway."""
        shared, media = ("1771", "755") if served else ("1770", "750")
        return [
            (self.base_dir, "root", "root", "755"),
            (self.uv_cache, user, user, "700"),
            (self.root, "root", user, "1775"),
            (self.releases, user, user, "755"),
            (self.shared, "root", user, shared),
            (f"{self.shared}/media", user, user, media),
            (f"{self.shared}/backups", user, user, "700"),
            (self.logs, user, user, "750"),
        ]
