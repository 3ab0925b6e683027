"""Every call of the host program, built by one named, typed function each. Built as data; nothing runs here.

Each returns a `remote.Command` carrying its `ayna_fab.hostprog.calls` object, so the
plan can be printed, dry-run, and answered by a test host. tests/unit/test_host_contract.py
checks that each call type is built here exactly once.
"""

from __future__ import annotations

import hashlib

from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Hook, Project
from ayna_fab.hostprog import backups as rules
from ayna_fab.hostprog import calls
from ayna_fab.provision import unitfiles as units
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Command


def health_checks(project: Project) -> list[dict]:
    """The project's HTTP services' health URLs, as the host polls them (127.0.0.1), and each slot's
    own socket, where an activation asks the new slot alone (probes: {slot: path})."""
    return [{"name": s, "url": f"http://127.0.0.1:{project.port(s)}{project.health[s]}",
             "probes": units.probe_paths(project, s)}
            for s in ("web", "api") if s in project.services and s in project.health]


# --- releases --------------------------------------------------------------------------------

def plan(layout: Layout, project: Project, lock: dict | None) -> Command:
    """Take the deploy lock (lock=None: only look) and read the releases, in one round trip."""
    return hostcall.command(calls.Plan(root=layout.root, env_file=layout.env_file,
                                       units=units.unit_names(project), lock=lock,
                                       ports=units.host_ports(project), sockets=units.socket_names(project)),
                            "lock + plan", changes=False, held=lock is not None)


def stage(layout: Layout, token: str, number: int, base: int | None, archive: bytes | None,
          deleted: list[str], meta: dict) -> tuple[Command, bytes]:
    """Make releases/vN from base and the upload, which travels on the call's own stdin (returned
    with the command): the archive of changed files, then the names not to copy from base
    (deleted_list). One channel, where a file sent first over SFTP took a session of its own."""
    names = deleted_list(deleted)
    data = (archive or b"") + names
    links = {".env": layout.env_file, "media": f"{layout.shared}/media"}
    return hostcall.command(calls.Stage(root=layout.root, token=token, number=number, base=base,
                                        archive=len(archive or b""), deleted=len(names),
                                        sha256=hashlib.sha256(data).hexdigest(), meta=meta, links=links),
                            "upload"), data


def deleted_list(names: list[str]) -> bytes:
    """The upload's deleted names as the host's file system spells them, NUL-separated."""
    return b"".join(n.encode("utf-8", "surrogateescape") + b"\0" for n in names)


PREFLIGHT_TIMEOUT = 60.0
DJANGO_ONLY = ("backup", "migrate", "collectstatic")  # a project without Django has nothing to migrate


def project_steps(project: Project, steps: list[str]) -> list[str]:
    """The prepare steps that apply to the project: without Django, no backup, migrate or collectstatic."""
    return [s for s in steps if project.django or s not in DJANGO_ONLY]


def prepare(layout: Layout, project: Project, token: str, number: int, steps: list[str],
            base_venv: str | None, backup_release: str | None, keep_backups: int,
            after_install: tuple[Hook, ...] = (), hook_env: dict[str, str] | None = None) -> Command:
    """Install, back up, the Django steps and the pre-flip check; after_install: hooks run right
    after install (only when install is one of the steps), told hook_env besides the .env."""
    return hostcall.command(calls.Prepare(
        hooks=hook_specs(after_install) if "install" in steps else [], hook_env=dict(hook_env or {}),
        root=layout.root, token=token, number=number, steps=project_steps(project, steps), base_venv=base_venv,
        env_file=layout.env_file, uv_cache=layout.uv_cache,
        django_dir=project.django_dir if project.django else None, checks=project.checks,
        allow_debug=project.allow_debug,
        uv_config=layout.uv_config,
        asgi_dir=project.asgi_dir if "api" in project.services else None,
        asgi_app=project.asgi_app if "api" in project.services else None, project=project.name,
        keep_backups=rules.check_keep(keep_backups), backup_release=rules.check_release(backup_release),
        servers=units.preflight_servers(project, layout.release(number)), preflight_timeout=PREFLIGHT_TIMEOUT),
        "prepare")


def preflight(layout: Layout, project: Project, token: str, number: int) -> Command:
    """The pre-flip check alone: vN's web and api started privately until healthy, then stopped."""
    return hostcall.command(calls.Preflight(root=layout.root, token=token, number=number,
                                            env_file=layout.env_file,
                                            servers=units.preflight_servers(project, layout.release(number)),
                                            timeout=PREFLIGHT_TIMEOUT), "preflight")


def hook_specs(hooks: tuple[Hook, ...] | list[Hook]) -> list[dict]:
    """Hooks as the host program runs them: name, argv, timeout (where and when is the laptop's choice)."""
    return [{"name": h.name, "command": list(h.command), "timeout": h.timeout} for h in hooks]


def hooks(layout: Layout, token: str, number: int | None, phase: str, chosen: list[Hook], env: dict[str, str],
          *, stop_at_failure: bool) -> Command:
    """Run one phase's hooks on the host, under the lock, in release vN (None: the live release)."""
    return hostcall.command(calls.Hooks(root=layout.root, token=token, number=number, env_file=layout.env_file,
                                        phase=phase, hooks=hook_specs(chosen), env=dict(env),
                                        stop_at_failure=stop_at_failure), f"hooks {phase}",
                            hint="the hook's output is above; run it by hand in the release as the deploy user")


def activate(layout: Layout, project: Project, token: str, number: int, actions: list[tuple[str, str]],
             verify_timeout: float, health_timeout: float, *, back: int | None = None, restore: bool = False,
             on_ok: dict | None = None, on_failure: dict | None = None, pending: dict | None = None,
             step: str = "activate") -> Command:
    """Make vN live, carried to its end by the host (hostprog/switchover.py). restore: on failure, put
    back `back` (or stop the units when it is None). on_ok / on_failure: what the host records at
    the end (built by `record`); pending: what a fleet host records if its laptop goes away."""
    return hostcall.command(calls.Activate(
        root=layout.root, token=token, number=number, actions=[list(a) for a in actions],
        health=health_checks(project),
        http_units=[u for s in ("web", "api") if s in project.services for u in units.service_units(project, s)],
        verify_timeout=verify_timeout, health_timeout=health_timeout, back=back, restore=restore,
        record={"ok": on_ok, "failed": on_failure, "pending": pending}, slots=units.slot_units(project)), step)


def record(project: Project, states: dict[int, str], meta: dict[int, dict], log: dict | None,
           remove: list[int] = ()) -> dict:
    """An outcome the host records itself at an activation's end: Finish's arguments, as data."""
    return {"states": {str(k): v for k, v in states.items()}, "meta": {str(k): v for k, v in meta.items()},
            "log": log, "remove": list(remove), "units": units.unit_names(project)}


def follow(layout: Layout, token: str, timeout: float) -> Command:
    """Reattach to this operation's activation on the host (after a lost link)."""
    return hostcall.command(calls.Follow(root=layout.root, token=token, timeout=timeout), "activate",
                            changes=False)


def deactivate(layout: Layout, project: Project, token: str) -> Command:
    return hostcall.command(calls.Deactivate(root=layout.root, token=token, units=units.unit_names(project)),
                            "restore")


def finish(layout: Layout, project: Project, token: str, states: dict[int, str], meta: dict[int, dict],
           log: dict | None, remove: list[int], step: str = "record") -> Command:
    return hostcall.command(calls.Finish(root=layout.root, token=token,
                                         states={str(k): v for k, v in states.items()},
                                         meta={str(k): v for k, v in meta.items()}, log=log,
                                         remove=list(remove), units=units.unit_names(project)), step)


def unlock(layout: Layout, token: str | None, force: bool = False) -> Command:
    return hostcall.command(calls.Unlock(root=layout.root, token=token, force=force), "unlock")


def status(layout: Layout, project: Project) -> Command:
    return hostcall.command(calls.Status(root=layout.root, units=units.unit_names(project),
                                         health=health_checks(project)), "status", changes=False)


def history(layout: Layout, limit: int) -> Command:
    return hostcall.command(calls.History(root=layout.root, limit=limit), "history",
                            changes=False)


def migrations(layout: Layout, project: Project, numbers: list[int]) -> Command:
    return hostcall.command(calls.Migrations(root=layout.root, django_dir=project.django_dir,
                                             numbers=list(numbers)), "migrations", changes=False)


# --- day two ---------------------------------------------------------------------------------

def manage(layout: Layout, project: Project, argv: list[str], step: str = "manage") -> Command:
    """`python manage.py ARGV` in the live release with the units' environment (a shell: step="shell")."""
    return hostcall.command(calls.Manage(root=layout.root, env_file=layout.env_file,
                                         django_dir=project.django_dir, argv=list(argv)), step,
                            hint="the host has no live release yet? deploy first")


def migrate(layout: Layout, project: Project, argv: list[str], *, backup: bool, keep: int, lock: dict) -> Command:
    """Under the deploy lock: back the database up (unless told not to), then `manage.py migrate`.
    One round trip and one host process, which ignores a dropped connection."""
    return hostcall.command(calls.Migrate(root=layout.root, env_file=layout.env_file,
                                          django_dir=project.django_dir, project=project.name,
                                          argv=list(argv), backup=backup, keep=rules.check_keep(keep),
                                          lock=lock), "migrate")


def backup(layout: Layout, project: Project, release_name: str | None, keep: int | None) -> Command:
    """pg_dump (SQLite: its backup API) to shared/backups/{project}-{time}-{release}.dump or .sqlite3
    (0600), keeping the newest `keep`."""
    return hostcall.command(calls.Backup(root=layout.root, env_file=layout.env_file, project=project.name,
                                         release=rules.check_release(release_name),
                                         keep=None if keep is None else rules.check_keep(keep)),
                            "backup", hint="is the database up (PostgreSQL), or its file there (SQLite), and "
                                           "DATABASE_URL in the host's .env right?")


def backups(layout: Layout, project: Project) -> Command:
    return hostcall.command(calls.Backups(root=layout.root, project=project.name), "backups", changes=False)


def restore(layout: Layout, project: Project, name: str, *, keep: int, lock: dict, safety: bool = True) -> Command:
    """Under the deploy lock: back up the data as it is (unless safety=False), stop the units,
    restore `name` in one transaction, start the units that were running."""
    rules.check_name(name, project.name)
    return hostcall.command(calls.Restore(root=layout.root, env_file=layout.env_file, project=project.name,
                                          name=name, units=units.unit_names(project),
                                          keep=rules.check_keep(keep), lock=lock, safety=safety), "restore")


def exec_in_release(layout: Layout, argv: list[str]) -> Command:
    """Any command in the live release's directory, with the units' environment (`fab exec`)."""
    return hostcall.command(calls.Exec(root=layout.root, env_file=layout.env_file, argv=list(argv)), "exec",
                            hint="the host has no live release yet? deploy first")


def env_write(layout: Layout, token: str, writer: str) -> Command:
    """Under the operation's lock: the env file's new text, sent on stdin, put in place by the
    project's env writer (provision/envwriter.py)."""
    return hostcall.command(calls.EnvWrite(root=layout.root, token=token, env_file=layout.env_file,
                                           writer=writer), "env file",
                            hint="setup installs the env writer and its sudoers rule: fab -H HOST setup")


def services(unit_names: list[str]) -> Command:
    return hostcall.command(calls.Services(units=list(unit_names)), "services", changes=False)


def facts(user: str, dirs: list[str], unit_names: list[str], env: str) -> Command:
    return hostcall.command(calls.Facts(user=user, dirs=list(dirs), units=list(unit_names), env=env),
                            "inspect host", changes=False)


def site_page(layout: Layout, page: str | None) -> Command:
    """The maintenance switch: the page Caddy answers with while on, or None for off."""
    return hostcall.command(calls.SitePage(root=layout.root, page=page), "maintenance")


def ports(project: Project) -> Command:
    """Who listens on the project's ports (and the pre-flip check's), and which its sockets hold."""
    return hostcall.command(calls.Ports(ports=units.host_ports(project), sockets=units.socket_names(project)),
                            "ports", changes=False)


# --- setup, as root: files in directories the deploy user can write (hostprog/setupfiles.py) -------

UNSAFE_HINT = ("someone with the deploy user's rights put it there: look at it (ls -la), remove it, "
               "then run setup again")


def setup_dirs(dirs: list[tuple[str, str, str, str]]) -> Command:
    """The layout's directories, created or given their owner, group and mode."""
    return hostcall.command(calls.Dirs(dirs=[list(d) for d in dirs]), "directories", hint=UNSAFE_HINT)


def setup_env_file(path: str, user: str, *, upload: bool, replace: bool, database_url: bool) -> Command:
    """The env file: with upload, its new text goes on the command's stdin, never in argv."""
    return hostcall.command(calls.EnvFile(path=path, user=user, upload=upload, replace=replace,
                                          database_url=database_url), "env file", hint=UNSAFE_HINT)


def setup_uv_config(path: str, text: str | None) -> Command:
    """The project's uv.toml from hosts.toml's index settings (packageindex.uv_toml), or its
    removal when they set none; written by root where the deploy user may make names."""
    return hostcall.command(calls.UvConfig(path=path, text=text), "package index", hint=UNSAFE_HINT)


def authorize_key(user: str, key: str) -> Command:
    return hostcall.command(calls.AuthorizeKey(user=user, key=key.strip()), "deploy user", hint=UNSAFE_HINT)
