"""Day-two tasks: migrate, shell, manage, logs, start, stop, restart, services, backup, restore.

Each resolves -H like every other task, connects as the deploy user with strict
host-key checking, and runs commands built in ayna_fab/commands/. A group is
handled host by host (logs --follow: all hosts at once); lines from several
hosts carry a `[host] ` prefix.

Words after `--` belong to the task (`fab -H prod manage -- showmigrations`):
`Executor` hands them over instead of letting Fabric run them as a raw command
on the hosts, which would connect without checking host keys.
"""

from __future__ import annotations

import os
import shlex
import sys

from ayna_fab.cli import confirm, jsondoc, output
from ayna_fab.cli.executor import takes_remainder
from ayna_fab.cli.exitcodes import task
from ayna_fab.cli.output import Lines
from ayna_fab.cli.tasks import common
from ayna_fab.commands import hostcalls as hostcmd
from ayna_fab.commands import systemd as cmd
from ayna_fab.config import targets
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Config, Host, Project
from ayna_fab.errors import OperationFailed, UsageError
from ayna_fab.hostprog import backups as rules
from ayna_fab.ops import answers, logstream, restore as restoring
from ayna_fab.ops import lockrecord as lock
from ayna_fab.provision import unitfiles as units
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Remote, Result


def _words(args, task_name: str) -> list[str]:
    """The task's `args`: a list from the Executor, or a string from --args."""
    if args is None:
        if "--" in sys.argv[1:]:  # the words reached Fabric, not us: stop before Fabric runs them raw
            raise UsageError("the words after -- were not handed to ayna-fab", step=task_name,
                             hint="fabric.yaml next to fabfile.py must set tasks.executor_class to "
                                  "ayna_fab.cli.executor.Executor")
        return []
    return shlex.split(args) if isinstance(args, str) else [str(a) for a in args]


def _command(args, task_name: str, missing: str, example: str) -> list[str]:
    """The words after `--`, which the task cannot do without."""
    argv = _words(args, task_name)
    if not argv:
        raise UsageError(missing, step=task_name, hint=f"put it after --, e.g. fab -H HOST {task_name} -- {example}")
    return argv


# --- what every task here does first ---------------------------------------------------------

def _open(cfg: Config, host: Host) -> Remote:
    return Remote.open(targets.endpoint(cfg, host))


def _units(project: Project, service: str | None) -> list[str]:
    """The project's units, or those of --service (comma-separated names from its services); both
    slots of web, api and celery: start and restart skip the slot that does not run the live
    release (its ExecCondition=)."""
    if not service:
        return units.unit_names(project)
    names = [s.strip() for s in service.split(",")]
    unknown = [s for s in names if s not in project.services]
    if unknown:
        raise UsageError(f"{project.name} has no service {', '.join(map(repr, unknown))}; "
                         f"its services: {', '.join(project.services)}", step="service")
    return [u for s in names for u in units.service_units(project, s)]


def _refused(host: Host, res: Result, step: str) -> None:
    """manage and shell become manage.py on the host; a refusal before that arrives as a result."""
    if res.code == 3 and "@@result " in res.stdout:
        answers.read(host, res, step)


def _describe_backup(b: dict) -> str:
    return f"{b['backup']} ({rules.human_size(b['bytes'])})"


# --- manage.py -----------------------------------------------------------------------------

@takes_remainder
@task(help={"args": "the manage.py command and its arguments; give them after --",
            "project": "needed when a host carries several projects"})
def manage(c, args=None, project=None):
    """Run any manage.py command in the live release with its environment: fab -H T manage -- ARGS.

    Example: ayna-fab -H prod manage -- showmigrations
    """
    argv = _command(args, "manage", "no manage.py command given", "showmigrations")
    cfg = common.load()
    jobs = common.jobs(c, cfg, project)
    several = len(jobs) > 1
    for host, proj in jobs:
        command = hostcmd.manage(Layout.of(cfg, proj), proj, argv)
        with _open(cfg, host) as s:
            if several:  # prefixed lines; no terminal, no stdin
                res = s.stream(command, Lines(prefix=f"[{host.name}] "))
            else:        # as if run on the host: a terminal if we have one, stdin passed on
                res = s.stream(command, None, pty=sys.stdin.isatty() and sys.stdout.isatty(), stdin=True)
        _refused(host, res, "manage")
        if res.code != 0:
            raise OperationFailed(f"manage.py {shlex.join(argv)} exited {res.code}", host=host.name,
                                  step="manage")


@task(help={"project": "needed when a host carries several projects"})
def shell(c, project=None):
    """Django's interactive shell in the live release, with its environment, on a terminal.

    Example: ayna-fab -H prod shell
    """
    cfg = common.load()
    for host, proj in common.jobs(c, cfg, project):
        with _open(cfg, host) as s:
            res = s.stream(hostcmd.manage(Layout.of(cfg, proj), proj, ["shell"], step="shell"), None, pty=True,
                           stdin=True)
        _refused(host, res, "shell")
        if res.code != 0:
            raise OperationFailed(f"the shell exited {res.code}", host=host.name, step="shell")


@takes_remainder
@task(help={"args": "arguments for manage.py migrate (an app and a migration to go to), after --",
            "no_backup": "do not back the database up first",
            "project": "needed when a host carries several projects"})
def migrate(c, args=None, no_backup=False, project=None):
    """Back the database up, then apply migrations in the live release (under the deploy lock).

    Example: ayna-fab -H prod migrate -- crew 0003
    """
    argv = _words(args, "migrate")
    cfg = common.load()
    jobs = targets.once_per_database(common.jobs(c, cfg, project), output.say)
    several = len(jobs) > 1
    for host, proj in jobs:
        take = rules.before_migrate(proj) and not no_backup
        keep = rules.keep_for(proj, cfg.defaults)
        prefix = f"[{host.name}] " if several else ""
        command = hostcmd.migrate(Layout.of(cfg, proj), proj, argv, backup=take, keep=keep,
                                  lock=lock.owner("migrate", "fab migrate"))

        def mark(line: str, host=host) -> None:  # the backup, named as soon as it is taken
            step = hostcall.step(line)
            if step and step[0] == "backup" and step[3]:
                output.say(f"[{host.name}] {'backup':<13} {_describe_backup(step[3])}")

        with _open(cfg, host) as s:
            res = s.stream(command, Lines(prefix=prefix, on_mark=mark))
        r = answers.read(host, res, "migrate")
        name = r["backup"]["backup"] if r.get("backup") else None
        if r["code"] != 0:
            raise OperationFailed(
                f"manage.py migrate exited {r['code']}" + (f"; the database was backed up before it as {name}"
                                                          if name else ""), host=host.name, step="migrate",
                hint=(f"PostgreSQL rolls a failed migration back; to return to the backup: "
                      f"{rules.restore_hint(host.name, name)}") if name else None)
        output.say(f"[{host.name}] {proj.name} {r['release']}: migrated"
                   + (f"; backup before it: {name}" if name else " (no backup taken)"))


# --- units -----------------------------------------------------------------------------------

def _unit_rows(host: Host, facts: list[dict]) -> list[list]:
    return [[host.name, f["unit"], f"{f['active']} ({f['sub']})", f["pid"] or "-",
             cmd.human_memory(f["memory"]), cmd.human_duration(f["uptime"])] for f in facts]


def _control(c, verb: str, service: str | None, project: str | None) -> None:
    cfg = common.load()
    for host, proj in common.jobs(c, cfg, project):
        wanted = _units(proj, service)
        with _open(cfg, host) as s:
            res = s.run(cmd.systemctl(verb, wanted), check=False)
        facts = cmd.unit_facts(hostcall.parse(res, host=host.name, step=verb))
        for f in facts:
            output.say(f"[{host.name}] {f['unit']:<24} {f['active']} ({f['sub']})"
                       + (f", pid {f['pid']}" if f["pid"] else ""))
        if res.code != 0:
            raise OperationFailed(f"{verb} failed:\n    " + res.stderr.strip().replace("\n", "\n    "),
                                  host=host.name, step=verb, hint=f"see why: fab -H {host.name} logs"
                                  + (f" --service {service}" if service else ""))


SERVICE_HELP = {"service": "only these services (e.g. web or celery,beat); default: all of the project's",
                "project": "needed when a host carries several projects"}


@task(help=SERVICE_HELP)
def start(c, service=None, project=None):
    """Start the project's units (or --service ones).

    Example: ayna-fab -H prod start --service celery,beat
    """
    _control(c, "start", service, project)


@task(help=SERVICE_HELP)
def stop(c, service=None, project=None):
    """Stop the project's units (or --service ones).

    Example: ayna-fab -H prod stop --service celery
    """
    _control(c, "stop", service, project)


@task(help=SERVICE_HELP)
def restart(c, service=None, project=None):
    """Restart the project's running units (or --service ones) in place; a deploy hands over instead.

    A cold restart: connections wait in the socket while the processes start again.

    Example: ayna-fab -H prod restart --service web
    """
    _control(c, "restart", service, project)


@task(help={**SERVICE_HELP, "json": "print JSON for scripts"})
def services(c, service=None, project=None, json=False):
    """Each unit's state, main PID, memory and uptime.

    Example: ayna-fab -H prod services
    """
    cfg = common.load()
    rows, data = [], []
    for host, proj in common.jobs(c, cfg, project):
        with _open(cfg, host) as s:
            facts = cmd.unit_facts(answers.read(host, s.run(hostcmd.services(_units(proj, service)), check=False),
                                          "services"))
        data += [{"host": host.name, "project": proj.name, **f} for f in facts]
        rows += _unit_rows(host, facts)
    if json:
        output.emit_json(data)
    else:
        output.table("services", ["host", "unit", "state", "pid", "memory", "uptime"], rows)


# --- logs ------------------------------------------------------------------------------------

@task(help={"service": "only these services (e.g. web or celery,beat); default: all of the project's",
            "follow": "keep printing new lines until Ctrl-C (every host of the target at once)",
            "since": "from this time on: '2026-01-02 03:04', 'today', '-1h', '2 hours ago'",
            "lines": "how many of the last lines (default 50; with --since, all since then)",
            "project": "needed when a host carries several projects"})
def logs(c, service=None, follow=False, since=None, lines=None, project=None):
    """The project's journal, each line prefixed with its host: journalctl over its units.

    Example: ayna-fab -H prod logs --follow --service web -n 100
    """
    cfg = common.load()
    if lines is not None and not str(lines).isdigit():
        raise UsageError(f"--lines {lines!r} is not a whole number", step="logs")
    count = int(lines) if lines is not None else (None if since else 50)
    try:
        jobs = [(host, cmd.logs(proj.name, _units(proj, service), lines=count, since=since, follow=follow))
                for host, proj in common.jobs(c, cfg, project)]
    except ValueError as exc:
        raise UsageError(str(exc), step="logs") from None
    if not follow:
        for host, command in jobs:
            with _open(cfg, host) as s:
                res = s.stream(command, Lines(prefix=f"[{host.name}] "))
            if res.code != 0:
                raise OperationFailed(f"journalctl exited {res.code}", host=host.name, step="logs",
                                      hint="the deploy user reads its units' logs through the journal "
                                           "reader setup installs: run setup if the host predates it")
        return
    logstream.follow(cfg, jobs, lambda prefix: Lines(prefix=prefix), output.warn)


# --- backups ---------------------------------------------------------------------------------

@task(help={"list": "list the backups on the host instead of taking one",
            "project": "needed when a host carries several projects",
            "json": "with --list: print one JSON document (schema: docs/cli.md)"})
def backup(c, list=False, project=None, json=False):
    """Back the database up (PostgreSQL or SQLite) to shared/backups (0600), keeping the newest keep_backups.

    Example: ayna-fab -H prod backup --list
    """
    if json and not list:
        raise UsageError("--json goes with --list", step="backup", hint="fab -H HOST backup --list --json")
    if list:
        with jsondoc.failures(json, backups=None):
            found = _backup_list(c, project)
        if json:
            output.emit_json({"ok": True, "exit_code": 0, "backups": found})
        else:
            output.table("backups", ["host", "backup", "release", "taken at", "size", "mode"],
                         [[b["host"], b["backup"], b["release"], b["taken_at"], rules.human_size(b["bytes"]),
                           b["mode"]] for b in found])
        return
    cfg = common.load()
    jobs = common.jobs(c, cfg, project)
    for host, proj in targets.once_per_database(jobs, output.say):
        keep = rules.keep_for(proj, cfg.defaults)
        with _open(cfg, host) as s:
            b = answers.read(host, s.run(hostcmd.backup(Layout.of(cfg, proj), proj, None, keep), check=False,
                                   timeout=None), "backup")
        output.say(f"[{host.name}] {proj.name}: {_describe_backup(b)} in {b['seconds']:.1f}s, "
                   f"{os.path.dirname(b['path'])}")
        if b["pruned"]:
            output.say(f"[{host.name}] removed {len(b['pruned'])} older than the newest {keep}: "
                       + ", ".join(b["pruned"]))


def _backup_list(c, project: str | None) -> list[dict]:
    """Every backup of the target's hosts, one dict each (backup --list's rows, and its JSON)."""
    cfg = common.load()
    rows = []
    for host, proj in common.jobs(c, cfg, project):
        with _open(cfg, host) as s:
            found = answers.read(host, s.run(hostcmd.backups(Layout.of(cfg, proj), proj), check=False), "backups")
        rows += [{"host": host.name, "project": proj.name, "backup": b["name"], "release": b["release"],
                  "taken_at": b["taken_at"], "bytes": b["bytes"], "mode": b["mode"]} for b in found["backups"]]
    return rows


@task(help={"backup": "the backup's file name (see: fab -H HOST backup --list), or 'latest'",
            "yes": "do not ask for confirmation",
            "project": "needed when a host carries several projects"})
def restore(c, backup=None, yes=False, project=None):
    """Replace the project's database with a backup, after asking and backing up the current data.

    The project's units stop meanwhile; the restore is one transaction; they start again after it.

    Example: ayna-fab -H prod restore --backup latest
    """
    cfg = common.load()
    if not backup:
        raise UsageError("which backup? pass --backup NAME (or --backup latest)", step="restore",
                         hint="see them with: fab -H HOST backup --list")
    jobs = targets.once_per_database(common.jobs(c, cfg, project), output.say)
    restoring.check_names(backup, jobs)
    plans = restoring.plan(cfg, jobs, backup)
    for p in plans:  # every answer before the first change
        if not yes and not _confirm(p.host, p.project, p.backup, p.live):
            raise UsageError("not restored; nothing was changed", host=p.host.name, step="restore")
    for p in plans:
        restoring.restore_one(cfg, p.host, p.project, p.backup["name"], output.say, _describe_backup)


def _confirm(host: Host, proj: Project, chosen: dict, live: str | None) -> bool:
    return confirm.yes(f"[{host.name}] replace {proj.name}'s database (live release {live or 'none'}) with "
                       f"{chosen['name']}, taken {chosen['taken_at']} on {chosen['release']}? Its units stop "
                       "while it runs.", flag="--yes", what="replacing a database", host=host.name,
                       step="restore")


TASKS = (migrate, shell, manage, logs, start, stop, restart, services, backup, restore)
