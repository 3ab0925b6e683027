"""`setup`: bootstrap a host for a project, as a list of named, idempotent steps.

Read top to bottom. Every step reports what it changed, so a second run says
"nothing changed". Local checks (the .env to upload, DATABASE_URL) run before
the first connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ayna_fab.commands import caddy as caddycmd, changed_lines
from ayna_fab.commands import hostcalls as hostcmd
from ayna_fab.commands import setup as cmd
from ayna_fab.commands import teardown as teardown_cmd
from ayna_fab.config import packageindex, sites
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Config, Host, PackageIndex, Project, package_index
from ayna_fab.errors import OperationFailed, UsageError
from ayna_fab.provision import (asgiserve, caddyfile, database, envcheck as envfile, envwriter, hostports, localenv,
                                snippet as caddy_snippet, sudoers, unitfiles as units)
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Remote


@dataclass
class Setup:
    """Everything the steps need, decided before connecting."""

    config: Config
    host: Host
    project: Project
    force_env: bool = False
    local_env: str | None = None                  # the env file's text (env_command or env_file), if set
    remote_database_url: str | None = None        # the host's, when there is no local env file
    snippet: str | None = None                    # the project's caddy/ directives, if it has a site here
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def layout(self) -> Layout:
        return Layout.of(self.config, self.project)

    @property
    def remote_env_path(self) -> str:
        return self.layout.env_file

    @property
    def deploy_user(self) -> str:
        return self.host.user

    @property
    def index(self) -> PackageIndex:
        return package_index(self.host, self.project)

    @property
    def site(self) -> sites.Site | None:
        return sites.site(self.config, self.host, self.project)


def prepare(config: Config, host: Host, project: Project, force_env: bool,
            read_env: Callable[[Project], str | None] = localenv.read) -> Setup:
    """Local checks: a bad .env or DATABASE_URL stops here, before any connection. The env file's
    text is read as env.push reads it (`read_env`: env_command's output, else env_file's)."""
    s = Setup(config, host, project, force_env)
    if s.site is not None:
        s.snippet = caddy_snippet.read(project.source)
    try:
        s.local_env = read_env(project)
    except UsageError as exc:
        exc.host = host.name
        raise
    if s.local_env is not None:
        bad = envfile.problems(envfile.parse(s.local_env), project.name, project.port("web"),
                               project.port("api"))
        if bad:
            raise UsageError(f"{localenv.origin(project)}: " + "; ".join(bad), host=host.name, step="env file",
                             hint="fix the local .env before uploading it (values are never shown)")
        if project.create_database:
            database.from_url(envfile.parse(s.local_env).get("DATABASE_URL", ""))
    return s


def step_ports(s: Setup, r: Remote) -> None:
    """Before anything changes: the project's ports (and the pre-flip check's) are free, or its own."""
    res = _host_call(s, r, hostcmd.ports(s.project))
    hostports.refuse(res, host=s.host.name, project=s.project.name, root=s.layout.root, step="ports")


def step_user(s: Setup, r: Remote) -> None:
    """The deploy user, and the public key of identity_file (the deploy key, never the admin key)
    in its authorized_keys."""
    pub = Path(f"{s.host.identity_file}.pub") if s.host.identity_file else None
    key = pub.read_text() if pub and pub.exists() else None
    if key is None:
        s.warnings.append(f"no public key next to identity_file; authorize the deploy key for "
                          f"{s.deploy_user} yourself")
    _apply(s, r.run(cmd.ensure_user(s.deploy_user)).stdout)
    if key is not None:
        _host_call(s, r, hostcmd.authorize_key(s.deploy_user, key))


def step_dirs(s: Setup, r: Remote) -> None:
    _host_call(s, r, hostcmd.setup_dirs(s.layout.dirs(s.deploy_user, served=s.site is not None)))


def step_uv(s: Setup, r: Remote) -> None:
    _apply(s, r.run(cmd.install_uv(packageindex.pip_args(s.index))).stdout)


def step_index(s: Setup, r: Remote) -> None:
    """hosts.toml's index settings where uv reads them on deploys (UV_CONFIG_FILE, see packageindex)."""
    _host_call(s, r, hostcmd.setup_uv_config(s.layout.uv_config, packageindex.uv_toml(s.index)))


def step_env(s: Setup, r: Remote) -> None:
    """The env file, through the host program as root: it refuses a link or a hard link planted
    there, and answers only the keys that differ (the text travels on stdin, never back)."""
    path = s.remote_env_path
    upload = s.local_env is not None
    res = _host_call(s, r, hostcmd.setup_env_file(
        path, s.deploy_user, upload=upload, replace=s.force_env,
        database_url=s.project.create_database and not upload), stdin=s.local_env)
    s.remote_database_url = res.get("database_url")
    if not upload:
        if not res["existed"]:
            s.warnings.append(f"{path} does not exist and neither env_command nor env_file is configured: create "
                              f"it (owner root, group {s.deploy_user}, mode 0640) or set "
                              f"projects.{s.project.name}.env_file")
        return
    if not res["existed"]:
        s.changes.append(f"uploaded {path}")
    elif res["differs"]:
        k = res["keys"]
        keys = (envfile.KeyDiff(tuple(k["added"]), tuple(k["removed"]), tuple(k["changed"])).summary()
                if k is not None else "the file on the host would not load in systemd")
        if res.get("written"):
            s.changes.append(f"replaced {path} ({keys})")
        else:
            s.warnings.append(f"{path} differs from {localenv.origin(s.project)} ({keys}); left as it is. "
                              "Pass --force-env to overwrite it")


def step_database(s: Setup, r: Remote) -> None:
    if not s.project.create_database:
        return
    text = s.local_env
    if text is None:
        url = s.remote_database_url
    else:
        url = envfile.parse(text).get("DATABASE_URL")
    if not url:
        s.warnings.append("create_database is set but there is no DATABASE_URL yet; database not created")
        return
    db = database.from_url(url)
    if not db.is_local:
        s.warnings.append(f"DATABASE_URL points at {db.host}, not this host; database not created here")
        return
    _apply(s, r.run(cmd.create_database(), stdin=database.ensure_sql(db)).stdout)


def step_units(s: Setup, r: Remote) -> None:
    if "api" in s.project.services:   # the program the api unit runs (provision/asgiserve.py)
        _apply(s, r.run(cmd.install_program(asgiserve.PATH, asgiserve.source())).stdout)
    rendered = units.render_all(s.config, s.host, s.project)
    bins = [f"{s.layout.venv}/bin"] + [f"{s.layout.root}/releases/{slot}/.venv/bin" for slot in units.SLOTS]
    legacy = [units.standard_name(s.project, x) for x in s.project.services if x in units.SLOT_SERVICES]
    first = units.SLOTS[0]
    _apply(s, r.run(cmd.install_units(rendered, bins, legacy=legacy, slot_link=f"{s.layout.releases}/{first}",
                                      user=s.deploy_user, first_slot=units.slot_units(s.project)[first])).stdout)


def step_sudoers(s: Setup, r: Remote) -> None:
    names = units.unit_names(s.project)
    reader = sudoers.journal_reader(s.project.name)
    _apply(s, r.run(cmd.install_program(reader, sudoers.render_journal_reader(s.project.name, names))).stdout)
    writer = envwriter.render(s.project.name, s.remote_env_path, s.deploy_user)
    _apply(s, r.run(cmd.install_program(envwriter.path(s.project.name), writer)).stdout)
    text = sudoers.render(s.project.name, s.deploy_user, names)
    _apply(s, r.run(cmd.install_sudoers(sudoers.path(s.project.name), text)).stdout)


def step_caddy(s: Setup, r: Remote) -> None:
    """The project's Caddy site (docs/proxy.md), or its removal when it has no domains here."""
    site = s.site
    media = units.media_name(s.project.name)
    if site is None:
        _apply(s, r.run(caddycmd.remove_site(s.project.name)).stdout)
        _apply(s, r.run(teardown_cmd.remove_units([media])).stdout)
        return
    _apply(s, r.run(caddycmd.install_media(media, units.render_media(s.config, s.project))).stdout)
    _apply(s, r.run(caddycmd.install_site(s.project.name, caddyfile.render(site, s.snippet))).stdout)


# The pipeline, in order. Ports first: a port another program holds refuses setup before it changes
# anything. The .env comes before the database (it holds DATABASE_URL) and
# the units (they name it); sudoers once the units it grants exist; Caddy last, in front of them.
STEPS: list[tuple[str, Callable[[Setup, Remote], None]]] = [
    ("ports", step_ports),
    ("deploy user", step_user),
    ("directories", step_dirs),
    ("uv", step_uv),
    ("package index", step_index),
    ("env file", step_env),
    ("database", step_database),
    ("systemd units", step_units),
    ("sudoers", step_sudoers),
    ("caddy", step_caddy),
]


def _apply(s: Setup, stdout: str) -> None:
    s.changes.extend(changed_lines(stdout))


def _host_call(s: Setup, r: Remote, command, stdin: str | None = None) -> dict:
    """A host-program call of setup: its changes recorded, a refusal raised naming host and step."""
    res = hostcall.parse(r.run(command, check=False, stdin=stdin), host=s.host.name, step=command.step)
    if res.get("error"):
        raise OperationFailed(res["detail"], host=s.host.name, step=command.step, hint=command.hint)
    s.changes.extend(res.get("changes", []))
    return res


def run(s: Setup, r: Remote, say: Callable[[str], None]) -> Setup:
    for name, step in STEPS:
        before = len(s.changes)
        step(s, r)
        new = s.changes[before:]
        say(f"[{s.host.name}] {name}: " + ("; ".join(new) if new else "ok"))
    return s
