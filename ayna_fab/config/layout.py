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

    def dirs(self, user: str) -> list[tuple[str, str, str]]:
        """(path, owner, mode) of every directory, parents first."""
        return [
            (self.base_dir, "root", "755"),
            (self.uv_cache, user, "700"),
            (self.root, user, "755"),
            (self.releases, user, "755"),
            (self.shared, user, "750"),
            (f"{self.shared}/media", user, "750"),
            (f"{self.shared}/backups", user, "700"),
            (self.logs, user, "750"),
        ]
