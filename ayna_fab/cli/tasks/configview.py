"""`fab config`: the configuration as each host runs each project (ops/configview.py). Local only:
reads hosts.toml and the env files beside it, connects nowhere."""

from __future__ import annotations

from ayna_fab.cli import output
from ayna_fab.cli.exitcodes import task
from ayna_fab.cli.tasks import common
from ayna_fab.config import targets
from ayna_fab.errors import UsageError
from ayna_fab.ops import configview


@task(name="config", help={"project": "only this project", "host": "only these hosts or groups (as -H takes them)",
                           "json": "print JSON for scripts"})
def show_config(c, project=None, host=None, json=False):
    """The configuration as resolved for each host and project: defaults, host, project, stage; secrets masked.

    Example: ayna-fab config --host prod --json
    """
    cfg = common.load()
    hosts = targets.resolve(cfg, host) if host else common.hosts(c, cfg, all_when_none=True)
    if project is not None and project not in cfg.projects:
        raise UsageError(f"unknown project {project!r}; known: {', '.join(cfg.projects)}", step="config")
    views = [configview.resolved(cfg, h, cfg.projects[name]) for h in hosts for name in h.projects
             if project is None or name == project]
    if not views:
        raise UsageError("no host of the target carries " + (repr(project) if project else "a project"),
                         step="config", hint="fab config lists every host's projects")
    if json:
        output.emit_json(views)
        return
    for i, view in enumerate(views):
        output.say(("\n" if i else "") + "\n".join(configview.lines(view)))
