"""The project's env file as the laptop has it, for every task that sends it (setup, env.push,
env.diff): env_command's output when the project sets one (a password manager), else env_file's
text. One reader, so setup and a push never disagree about where the secrets come from.

The command runs here, with this terminal (a password manager may prompt), and its output is
never printed: a failure shows only its exit status.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from ayna_fab.config.model import Project
from ayna_fab.errors import UsageError


def origin(project: Project) -> str | None:
    """Where the text comes from, in words for messages; None: the project names no source."""
    if project.env_command:
        return f"env_command ({project.env_command[0]})"
    return project.env_file or None


def read(project: Project) -> str | None:
    """The text (never printed), or None when the project sets neither env_command nor env_file."""
    if project.env_command:
        argv = list(project.env_command)
        try:
            p = subprocess.run(argv, stdout=subprocess.PIPE, text=True, errors="surrogateescape")
        except FileNotFoundError:
            raise UsageError(f"{argv[0]} is not installed", step="env_command",
                             hint=f"fix projects.{project.name}.env_command in hosts.toml") from None
        if p.returncode != 0:   # its output may be half a secret: never shown
            raise UsageError(f"env_command {argv[0]} exited {p.returncode}; its output is not shown",
                             step="env_command", hint="run it yourself to see why")
        return p.stdout
    if project.env_file:
        try:
            return Path(project.env_file).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read env_file {project.env_file}: {exc.strerror}", step="env file",
                             hint=f"fix projects.{project.name}.env_file in hosts.toml") from None
    return None


def once() -> Callable[[Project], str | None]:
    """`read`, each source read once for the task's lifetime: a fleet's hosts share one prompt."""
    texts: dict[tuple, str | None] = {}

    def read_once(project: Project) -> str | None:
        key = (project.env_command, project.env_file)
        if key not in texts:
            texts[key] = read(project)
        return texts[key]
    return read_once
