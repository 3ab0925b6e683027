"""One-off commands in the live release (exec), and taking a project off a host (remove: ops/teardown.py)."""

from __future__ import annotations

import shlex

from ayna_fab.cli import confirm, output
from ayna_fab.cli.executor import takes_remainder
from ayna_fab.cli.exitcodes import task
from ayna_fab.cli.output import Lines
from ayna_fab.cli.tasks import common
from ayna_fab.cli.tasks.daytwo import _command, _open, _refused
from ayna_fab.commands import hostcalls as hostcmd
from ayna_fab.config.layout import Layout
from ayna_fab.errors import CommandExited, UsageError
from ayna_fab.ops import teardown

PROJECT = "needed when a host carries several projects"


@takes_remainder
@task(name="exec", help={"args": "the command and its arguments; give them after --",
                         "interactive": "a terminal, with your keyboard on its stdin (a shell, celery inspect); "
                                        "one host only",
                         "once": "run it on the target's first host only",
                         "project": PROJECT})
def exec_(c, args=None, interactive=False, once=False, project=None):
    """Run any command in the live release as the deploy user, with its venv and env file: fab -H T exec -- CMD.

    Example: ayna-fab -H prod exec --once -- python manage.py showmigrations
    """
    argv = _command(args, "exec", "no command given", "python scripts/fix.py")
    cfg = common.load()
    jobs = common.jobs(c, cfg, project)
    if once:
        jobs = jobs[:1]
    if interactive and len(jobs) > 1:
        raise UsageError(f"an interactive terminal is one host's, and the target has {len(jobs)}", step="exec",
                         hint="add --once, or name one host with -H")
    several = len(jobs) > 1
    failed: list[tuple[str, int]] = []
    for host, proj in jobs:
        command = hostcmd.exec_in_release(Layout.of(cfg, proj), argv)
        with _open(cfg, host) as s:
            if interactive:
                res = s.stream(command, None, pty=True, stdin=True)
            else:
                res = s.stream(command, Lines(prefix=f"[{host.name}] ") if several else None)
        _refused(host, res, "exec")
        if res.code != 0:
            failed.append((host.name, res.code))
    if failed:
        name, code = failed[0]
        raise CommandExited(f"{shlex.join(argv)} exited " + ", ".join(f"{c} on {n}" for n, c in failed),
                            code, host=name if len(failed) == 1 else None, step="exec")


@task(help={"project": "the project to remove (always named: nothing is removed by default)",
            "purge": "also drop its database (if setup created it) and delete its files, after a last backup",
            "yes": "do not ask before purging (for scripts)"})
def remove(c, project=None, purge=False, yes=False):
    """Take a project off hosts: its proxy site, units, sockets and sudoers rule; --purge also its database and files.

    Example: ayna-fab -H prod remove --project shop
    """
    if not project:
        raise UsageError("which project? pass --project P", step="remove",
                         hint="fab -H HOST remove --project P [--purge]")
    cfg = common.load()
    jobs = common.jobs(c, cfg, project)
    if purge and not yes:
        for host, proj in jobs:   # every answer before the first change
            if not confirm.yes(f"[{host.name}] remove {proj.name} and PURGE it: drop its database and delete "
                               f"{Layout.of(cfg, proj).root} but its backups (a last backup is taken first)?",
                               flag="--yes", what="remove --purge", host=host.name, step="remove"):
                raise UsageError("not removed; nothing was changed", host=host.name, step="remove")
    for host, proj in jobs:
        r = teardown.run(cfg, host, proj, purge, output.say)
        kept = "its backups" if purge else "its releases, shared files, backups and database"
        output.say(f"[{host.name}] {proj.name} removed ({len(r.changes)} change(s)); kept: {kept}. "
                   f"Bring it back with: fab -H {host.name} setup --project {proj.name}, then deploy")


TASKS = (exec_, remove)
