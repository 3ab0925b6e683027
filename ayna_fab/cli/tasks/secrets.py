"""Secrets: the env file on the hosts compared, pushed, or changed one key at a time.

    fab -H T env.diff            keys that differ between the local env file and each host's
    fab -H T env.push            the local env file to the hosts, then a zero-downtime restart
    fab -H T env.set KEY         one key, its value read from stdin or a prompt (never argv)
    fab -H T env.unset KEY       one key removed

The local file is env_command's output (a password manager) or env_file. Pushes run as the deploy
user under the deploy lock through the project's env writer (ops/envpush.py). Values are never
printed: only keys.
"""

from __future__ import annotations

import getpass
import sys

from invoke import Collection

from ayna_fab.cli import output
from ayna_fab.cli.exitcodes import task
from ayna_fab.cli.tasks import common
from ayna_fab.cli.tasks.release import _by_project, _run
from ayna_fab.config import targets
from ayna_fab.config.layout import Layout
from ayna_fab.errors import OperationFailed, UsageError
from ayna_fab.hostprog import envfile
from ayna_fab.ops import envpush
from ayna_fab.provision import envcheck
from ayna_fab.remote.transport import Remote

PROJECT = "needed when a host carries several projects"


@task(help={"project": PROJECT})
def diff(c, project=None):
    """Keys that differ between the local env file (env_command or env_file) and each host's; never values.

    Example: ayna-fab -H prod env.diff
    """
    cfg = common.load()
    differ = 0
    for host, proj in common.jobs(c, cfg, project):
        local = envcheck.parse(envpush.local_text(proj))
        path = Layout.of(cfg, proj).env_file
        with Remote.open(targets.endpoint(cfg, host)) as r:
            text = r.read_text(path, step="env diff")
        if text is None:
            output.say(f"[{host.name}] {proj.name}: {path} does not exist (env.push creates it)")
            differ += 1
            continue
        d = envcheck.diff(envcheck.parse(text), local)   # added: only local; removed: only on the host
        differ += not d.empty
        output.say(f"[{host.name}] {proj.name}: " + ("the same keys and values" if d.empty else
                   f"pushing would change: {d.summary()}"))
    if differ:
        raise OperationFailed(f"{differ} host(s) differ from the local env file", step="env diff",
                              hint="fab -H HOST env.push makes them the same")


def _change(c, project, dry_run, new_text, event: str) -> None:
    cfg = common.load()
    for name, hosts in _by_project(c, cfg, project).items():
        proj = cfg.projects[name]
        op, _ = _run(lambda ts: envpush.EnvPush(cfg, proj, new_text(proj), ts, event=event), cfg, hosts, proj,
                     dry_run, event.replace(" ", "-"))
        for t in op.targets:
            keys = op.keys.get(t.name)
            if dry_run:
                output.say(f"[{t.name}] dry run: nothing was changed")
            elif t.name not in op.written:
                output.say(f"[{t.name}] {proj.name}: the env file already holds that; nothing changed")
            else:
                output.say(f"[{t.name}] {proj.name}: {envpush.keys_text(keys)}; "
                           + (f"{t.live_before.name} restarted, healthy" if t.live_before else "no live release yet"))


@task(help={"project": PROJECT, "dry_run": "print what would run; change nothing"})
def push(c, project=None, dry_run=False):
    """Upload the local env file (env_command or env_file) as the deploy user, then restart with zero downtime.

    Example: ayna-fab -H prod env.push
    """
    texts: dict[str, str] = {}

    def new_text(proj):
        if proj.name not in texts:   # env_command runs once, before any host is touched
            texts[proj.name] = envpush.local_text(proj)
        text = texts[proj.name]
        return lambda old: text
    _change(c, project, dry_run, new_text, "env push")


def _value(key: str) -> str:
    """The value for key: stdin when it is not a terminal (a pipe, a file), else a prompt that does
    not echo. A trailing newline (echo, a file) is not part of it."""
    if sys.stdin.isatty():
        value = getpass.getpass(f"value for {key} (not shown): ")
    else:
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
        value = value[:-1] if value.endswith("\r") else value
    return value


def _key(key: str, task_name: str) -> str | None:
    """The key, checked; None when it was a help flag (invoke hands one to a positional argument)."""
    if key in ("-h", "--help"):
        output.line(f"Usage: fab -H HOST {task_name} KEY [--project P] [--dry-run]"
                    + ("   (the value comes from stdin, or a prompt on a terminal)" if task_name == "env.set" else ""))
        return None
    if "=" in key:
        raise UsageError("give the key alone: a value on the command line stays in shell history and in "
                         "every process list", step=task_name,
                         hint=f"fab -H HOST {task_name} {key.split('=', 1)[0]}, then type the value, "
                              "or pipe it in")
    if not envfile.NAME_RE.fullmatch(key):
        raise UsageError(f"{key!r} is not a variable name (letters, digits and _, not first a digit)",
                         step=task_name)
    return key


@task(help={"key": "the variable to set; its value comes from stdin or a prompt",
            "project": PROJECT, "dry_run": "print what would run; change nothing"})
def set_(c, key, project=None, dry_run=False):
    """Set one key of the hosts' env file (value from stdin or a prompt, never argv), then restart.

    Example: ayna-fab -H prod env.set SENTRY_DSN < dsn.txt
    """
    key = _key(key, "env.set")
    if key is None:
        return
    value = _value(key)
    try:
        envfile.quote(value)
    except ValueError as exc:
        raise UsageError(f"{key}'s value: {exc}", step="env.set") from None
    _change(c, project, dry_run, lambda proj: lambda old: envfile.with_value(old or "", key, value), "env set")


@task(help={"key": "the variable to remove", "project": PROJECT, "dry_run": "print what would run; change nothing"})
def unset(c, key, project=None, dry_run=False):
    """Remove one key from the hosts' env file, then restart.

    Example: ayna-fab -H prod env.unset FEATURE_X
    """
    key = _key(key, "env.unset")
    if key is None:
        return
    _change(c, project, dry_run, lambda proj: lambda old: envfile.without(old or "", key), "env unset")


collection = Collection("env", diff, push, unset)
collection.add_task(set_, name="set")
