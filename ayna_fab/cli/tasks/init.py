"""`fab init PATH`: read an existing project and say how to deploy it (ayna_fab/scan/project.py).

Without --write nothing is written anywhere: the hosts.toml entry and the .env are printed
(secrets as placeholders). With --write the entry goes into hosts.toml (AYNA_FAB_HOSTS or
./hosts.toml, created if missing), the .env with fresh random secrets next to it (mode 0600),
and the file is loaded again to prove it valid; a file that would not load is put back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ayna_fab.cli import jsondoc, output
from ayna_fab.cli.exitcodes import task
from ayna_fab.config import model as config, registry
from ayna_fab.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from ayna_fab.scan import project as projectinit


@task(positional=["path"], positional_defaults={"path": "."},
      help={"path": "the project's directory (a git checkout, or a folder in one); default: .",
            "write": "write the entry into hosts.toml and the .env next to it (never overwrites)",
            "name": "the project's name in hosts.toml (default: pyproject's name, or the folder's)",
            "host": "also add the project to this host's projects (with --write)",
            "hostname": "the host's address, when --host names a host hosts.toml does not have yet",
            "env": "production, staging or dev: the shared/.env.ENV the releases link",
            "json": "print one JSON document (schema: docs/cli.md) instead of the text"})
def init(c, path=None, write=False, name=None, host=None, hostname=None, env="production", json=False):
    """Read a project (nothing in it changes): print a hosts.toml entry, a .env and what to fix first.

    Example: ayna-fab init --write --host prod --hostname prod.example.org
    """
    path = path or "."  # None is "left out": Invoke eats a positional argument only while it is None
    with jsondoc.failures(json, path=path, written=False):
        _init(path, write, name, host, hostname, env, json)


def _init(path, write, name, host, hostname, env, json) -> None:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", step="init", hint="fab init PATH_TO_THE_PROJECT")
    if env not in config.ENVS:
        raise UsageError(f"unknown env {env!r}", step="init", hint=f"--env is one of: {', '.join(config.ENVS)}")
    hosts_file = config.hosts_file_path()
    cfg = config.load(hosts_file) if hosts_file.exists() else None
    from ayna_fab.scan import project as projectinit  # only `fab init` reads projects: kept out of fab start-up
    found = projectinit.inspect(root, name)
    if not config.NAME_RE.fullmatch(found.name):
        raise UsageError(f"{found.name!r} is not a project name for hosts.toml", step="init",
                         hint=f"pass --name: {config.NAME_RULE}")
    if cfg and found.name in cfg.projects:
        raise UsageError(f"{hosts_file} already has a project {found.name!r}", step="init",
                         hint="pass --name with another name, or edit the existing entry")
    plan = projectinit.plan(found, hosts_dir=hosts_file.absolute().parent,
                            ports=cfg.ports if cfg else registry.STANDARD, env=env,
                            base_dir=cfg.defaults.base_dir if cfg else "/opt/ayna")
    entry = projectinit.toml_entry(plan)
    if json:
        if write:
            _write(hosts_file, plan, entry, host, hostname, say=lambda _: None)
        output.emit_json(_document(found, plan, hosts_file, entry, write, host))
        return
    _found(found)
    if write:
        _write(hosts_file, plan, entry, host, hostname, say=output.say)
    else:
        output.say(f"\nThe entry for {hosts_file} (fab init {path} --write adds it):\n")
        output.line(entry)
        output.say(f"The .env ({plan.env_file}; --write makes it with random secrets, mode 0600):\n")
        output.line(projectinit.env_text(plan, generate=False))
    _gaps(found, plan, hosts_file)


def _document(f: projectinit.Found, plan: projectinit.Plan, hosts_file: Path, entry: str, written: bool,
              host: str | None) -> dict:
    """init's --json document (its schema: docs/cli.md)."""
    from ayna_fab.scan import project as projectinit
    deploy, standard = _gap_lists(f, plan, hosts_file)
    return {"ok": True, "exit_code": 0, "project": plan.name, "path": str(f.root), "hosts_file": str(hosts_file),
            "written": written, "host": host if written else None,
            "found": {"django_dir": f.django_dir, "settings_module": f.settings_module, "wsgi_app": f.wsgi_app,
                      "asgi_app": f.asgi_app, "celery_app": f.celery_app, "beat": f.beat, "database": f.database,
                      "uv_lock": f.uv_lock, "uv_lock_committed": f.uv_lock_committed,
                      "python": [{"source": d.source, "text": d.text, "spec": d.spec} for d in f.python],
                      "services": list(f.services), "env_keys": list(f.env_keys)},
            "entry": entry, "env_file": plan.env_file,
            "env": None if written else projectinit.env_text(plan, generate=False),
            "before_first_deploy": [{"what": g.what, "fix": g.fix, "blocking": g.blocking} for g in deploy],
            "standard": [{"what": g.what, "fix": g.fix} for g in standard],
            "ready": not any(g.blocking for g in deploy)}


def _found(f: projectinit.Found) -> None:
    from ayna_fab.scan import python as pyversion
    output.say(f"{f.name} in {f.root}:")
    rows = [("Django", f"manage.py in {f.django_dir}, WSGI {f.wsgi_app}" if f.django_dir is not None else "none found"),
            *([("settings", f"{f.settings_module} ({f.settings_why})")] if f.settings_module else []),
            ("ASGI app", f"{f.asgi_app} (from {f.asgi_dir})" if f.asgi_app else "none found"),
            ("Celery", (f"{f.celery_app}" + (", with a beat schedule" if f.beat else ", no beat schedule"))
             if f.celery_app else "none found"),
            ("database", f"{f.database} ({f.database_why})" if f.database else "none found"),
            ("Python", pyversion.describe(f.python).removeprefix("Python").lstrip(": ")),
            ("uv.lock", ("committed" if f.uv_lock_committed else "present, not committed"
                         if f.uv_lock_committed is False else "present") if f.uv_lock else "missing"),
            ("services", ", ".join(f.services) or "none"),
            *([("health", f"{f.health_web} ({f.health_web_why})" if f.health_web else
                f"{f.health_web_guess.url} ({f.health_web_guess.why})")]
              if "web" in f.services and (f.health_web or f.health_web_guess) else []),
            ("environment", ", ".join(f.env_keys) or "no variables read by the code found"),
            *([("listed", ", ".join(k for k in f.env_declared if k not in f.env_keys)
                + " (.env.example, Dockerfile ENV)")] if set(f.env_declared) - set(f.env_keys) else [])]
    for label, value in rows:
        output.line(f"  {label:<12} {value}")


def _write(hosts_file: Path, plan: projectinit.Plan, entry: str, host: str | None, hostname: str | None,
           say) -> None:
    env_path = hosts_file.absolute().parent / plan.env_file
    if env_path.exists():
        raise UsageError(f"{env_path} exists; fab init never overwrites it", step="init",
                         hint="move it away, or pass --name for another project name")
    old = hosts_file.read_text() if hosts_file.exists() else None
    try:
        from ayna_fab.scan import project as projectinit
        new = projectinit.inventory_text(old, entry, plan.name, host, hostname)
    except ValueError as exc:
        raise UsageError(f"{hosts_file}: {exc}", step="init", hint="add the entry printed without --write by hand")
    if old is None and host is None:
        raise UsageError(f"{hosts_file} does not exist, and a project must be on a host", step="init",
                         hint="pass --host NAME --hostname ADDRESS to create it with its first host")
    hosts_file.write_text(new)
    try:
        config.load(hosts_file)
    except ConfigError:
        if old is None:
            hosts_file.unlink()
        else:
            hosts_file.write_text(old)
        raise
    fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(projectinit.env_text(plan, generate=True))
    say(f"\nwrote [projects.{plan.name}] into {hosts_file}"
        + (f" and added it to {host}'s projects" if host else "")
        + f"; wrote {env_path} (mode 0600, random secrets; values are not shown)")


def _gap_lists(found: projectinit.Found, plan: projectinit.Plan, hosts_file: Path):
    """(what stands before a first deploy, what departs from the standard)."""
    from ayna_fab.scan import project as projectinit
    gaps = projectinit.deploy_gaps(found)
    try:
        standard = projectinit.standard_gaps(*projectinit.project_config(plan, hosts_file.absolute()))
    except ConfigError as exc:  # the entry itself would not load: that is the first thing to fix
        gaps.append(projectinit.Gap(f"the entry does not load: {exc.message}", exc.hint or ""))
        standard = []
    return gaps, standard


def _gaps(found: projectinit.Found, plan: projectinit.Plan, hosts_file: Path) -> None:
    gaps, standard = _gap_lists(found, plan, hosts_file)
    blocking = [g for g in gaps if g.blocking]
    notes = [g for g in gaps if not g.blocking]
    output.say("\nBefore the first deploy:" if blocking else "\nNothing stands in the way of a first deploy.")
    for g in blocking:
        output.line(f"  ✗ {g.what}\n      fix: {g.fix}")
    for g in notes:
        output.line(f"  · {g.what}\n      {g.fix}")
    # advice, not blockers: a deploy needs none of it, and init's exit code never depends on it
    output.say("\nAgainst the standard, advice only (fab validate reports it; a deploy does not need it):"
               if standard else "\nThe project meets the standard's seven checks.")
    for g in standard:
        output.line(f"  · {g.what}\n      {g.fix}")
    output.say("\nThen: fab -H HOST setup --project " + plan.name + ", and fab -H HOST deploy --project " + plan.name)
