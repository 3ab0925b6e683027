"""Load hosts.toml once, validate all of it, and return typed, frozen objects.

This is the only place that validates configuration. Everything after it
(command builders, SSH, unit files) trusts these values, so a bad value stops
here, before anything remote happens, with a message naming the file, the
dotted key and the fix.

Checks are allowlists: names, users, hostnames and paths must match strict
patterns, so no value can smuggle shell metacharacters, whitespace, control
characters or lookalike Unicode into a remote command. That is defence in
depth, not a licence to skip quoting: command builders still pass every value
through shlex.quote.

Schema (README.md, "hosts.toml", documents every key; keep it in step):
  [defaults]        user, admin_user, base_dir, keep_releases, identity_file,
                    admin_identity_file, known_hosts, connect_timeout, default_target,
                    keep_backups
  [projects.NAME]   source, port_base, services, env, env_file, health,
                    migrate_host, create_database, django_dir, wsgi_app, asgi_dir,
                    asgi_app, celery_app, batch, on_failure, keep_backups,
                    backup_before_migrate, checks, django, build, hooks, hook_failure
  [hosts.NAME]      hostname, port, user, admin_user, identity_file,
                    admin_identity_file, known_hosts, projects, gateway
  index_url, extra_index_urls, system_certs: in any of the three (INDEX_KEYS)
  [groups]          NAME = [host or group names]
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

from ayna_fab.config import registry
from ayna_fab.errors import ConfigError

ENV_VAR = "AYNA_FAB_HOSTS"
DEFAULT_FILE = "hosts.toml"
SERVICES = ("web", "api", "celery", "beat")
HTTP_SERVICES = ("web", "api")  # the ones with a port and a health endpoint
ENVS = ("production", "staging", "dev")
DEFAULT_HEALTH: Mapping[str, str] = MappingProxyType({"web": "/health/", "api": "/health"})

TOP_KEYS = ("defaults", "projects", "hosts", "groups")
DEFAULTS_KEYS = ("user", "admin_user", "base_dir", "keep_releases", "identity_file",
                 "admin_identity_file", "known_hosts", "connect_timeout", "default_target",
                 "keep_backups")
PROJECT_KEYS = ("source", "port_base", "services", "env", "env_file", "health",
                "migrate_host", "create_database", "django_dir", "wsgi_app", "asgi_dir",
                "asgi_app", "celery_app", "batch", "on_failure", "keep_backups", "backup_before_migrate")
ON_FAILURE = ("rollback", "stop")
BATCH_RE = re.compile(r"all|[1-9][0-9]{0,3}|[1-9][0-9]?%|100%")
# Where the code sits inside a release: the standard's src/web (Django) and src/api (FastAPI).
APP_DEFAULTS: Mapping[str, str] = MappingProxyType({
    "django_dir": "src/web", "wsgi_app": "config.wsgi:application",
    "asgi_dir": "src", "asgi_app": "api.main:app", "celery_app": "config"})
REL_PATH_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
APP_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
HOST_KEYS = ("hostname", "port", "user", "admin_user", "identity_file", "admin_identity_file",
             "known_hosts", "projects")
# Where uv finds packages on the hosts: in [defaults], on a host, or on a project (which wins).
INDEX_KEYS = ("index_url", "extra_index_urls", "system_certs")
DEFAULTS_KEYS += INDEX_KEYS
PROJECT_KEYS += ("checks", "django", *INDEX_KEYS)
# Build steps (laptop, before upload) and hooks (host or laptop, at named phases): README, "Builds and hooks".
PROJECT_KEYS += ("build", "hooks", "hook_failure")
BUILD_KEYS = ("name", "command", "outputs", "timeout")
HOOK_KEYS = ("name", "phase", "command", "on", "once", "timeout")
HOOK_PHASES = ("after-install", "before-flip", "after-success", "after-failure")  # in the order they run
LAPTOP_PHASES = ("after-success", "after-failure")   # the laptop only learns the outcome
HOOK_ON = ("host", "laptop")
HOOK_FAILURE = ("warn", "fail")   # a failed hook after the flip: a warning (exit 0), or exit 1
RESERVED_OUTPUTS = (".env", "media", ".venv")   # a release's own links and venv (and .ayna-*)
HOST_KEYS += ("gateway", *INDEX_KEYS)
# checks = "errors": Django's errors fail a deploy, its warnings are printed; "strict": both fail.
CHECKS = ("errors", "strict")
INDEX_URL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~/:%+=,-")

# Accounts the deploy user (the apps' User=) must never be: root, and system accounts with
# rights or data of their own.
RESERVED_USERS = ("root", "daemon", "bin", "sys", "sync", "nobody", "postgres", "redis", "sshd",
                  "www-data", "messagebus")
NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
NAME_RULE = "1-32 characters: a lowercase ASCII letter, then lowercase letters, digits, '-' or '_'"
PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+@%,:=/-")
URL_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~/-")
DNS_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
SHELL_META = frozenset("$`;|&<>()\\\"'*?[]{}!#~^")
_REQUIRED = object()  # sentinel: a key with no default


@dataclass(frozen=True)
class Defaults:
    """Values every host inherits unless it overrides them."""

    user: str = "adonis"            # SSH login for deploys, and the units' User=
    admin_user: str = "root"        # SSH login for setup (creates users, units, sudoers)
    base_dir: str = "/opt/ayna"     # remote; each project lives in base_dir/NAME
    keep_releases: int = 5          # >= 2: the active release and the previous good one
    identity_file: Path | None = None       # the deploy key: logs in as `user`
    admin_identity_file: Path | None = None  # the admin key: setup's login as `admin_user`
    known_hosts: Path = field(default_factory=lambda: Path.home() / ".ssh" / "known_hosts")
    connect_timeout: float = 10.0
    default_target: str | None = None  # host or group used when no -H is given
    keep_backups: int = 10          # backups kept in shared/backups
    index_url: str | None = None    # package index settings: see PackageIndex
    extra_index_urls: tuple[str, ...] | None = None
    system_certs: bool | None = None


@dataclass(frozen=True)
class BuildStep:
    """A command run on the laptop in a clean export of the deployed commit; the files under
    `outputs` go into the release although git does not hold them."""

    name: str
    command: tuple[str, ...]        # argv, no shell: ["sh", "-c", "..."] for one
    outputs: tuple[str, ...]        # relative files or directories it produces
    timeout: int = 600


@dataclass(frozen=True)
class Hook:
    """A command run at a named phase of deploy and rollback: on every host (in a release, as the
    deploy user, with the units' environment) or once on the laptop (notifications)."""

    name: str
    phase: str                      # one of HOOK_PHASES
    command: tuple[str, ...]        # argv, no shell
    on: str = "host"                # "host" or "laptop"
    once: bool = False              # host hooks: on one host of a fleet only (the migrate host)
    timeout: int = 300

    @property
    def laptop(self) -> bool:
        return self.on == "laptop"


@dataclass(frozen=True)
class Project:
    """One deployable project: where its code comes from and what it runs."""

    name: str
    source: Path                    # local git checkout, absolute
    port_base: int
    services: tuple[str, ...]
    env: str                        # production | staging | dev
    env_file: Path | None = None    # local .env uploaded by setup
    health: Mapping[str, str] = field(default_factory=dict, hash=False)
    migrate_host: str | None = None
    create_database: bool = False
    django_dir: str = APP_DEFAULTS["django_dir"]   # manage.py and the settings package
    wsgi_app: str = APP_DEFAULTS["wsgi_app"]
    asgi_dir: str = APP_DEFAULTS["asgi_dir"]       # the directory uvicorn imports asgi_app from
    asgi_app: str = APP_DEFAULTS["asgi_app"]
    celery_app: str = APP_DEFAULTS["celery_app"]   # celery -A, imported from django_dir
    batch: str = "all"             # fleet flips: "all", a number of hosts, or a percentage "25%"
    on_failure: str = "rollback"   # a fleet host failing its health gate: roll every flipped host back, or stop
    keep_backups: int | None = None      # None: [defaults] keep_backups
    backup_before_migrate: bool = True   # deploys and `fab migrate` dump the database first
    checks: str = "errors"               # "strict": Django's check warnings fail a deploy too
    django: bool = True                  # runs Django (check, migrate, collectstatic); default: has web
    index_url: str | None = None         # package index settings, over the host's: see PackageIndex
    extra_index_urls: tuple[str, ...] | None = None
    system_certs: bool | None = None
    build: tuple[BuildStep, ...] = ()
    hooks: tuple[Hook, ...] = ()
    hook_failure: str = "warn"           # "fail": a failed hook after the flip makes the deploy exit 1

    @property
    def ports(self) -> registry.PortRange:
        return registry.PortRange(self.name, self.port_base)

    def port(self, service: str) -> int:
        return self.ports.port(service)

    @property
    def shared_env(self) -> str:
        """The file in shared/ that is linked into each release as .env."""
        return f".env.{self.env}"


@dataclass(frozen=True)
class Host:
    """A server, with the defaults already applied: nothing left to merge."""

    name: str
    hostname: str
    port: int
    user: str
    admin_user: str
    identity_file: Path | None
    known_hosts: Path
    projects: tuple[str, ...]
    gateway: str | None = None      # a host entry to jump through (a bastion), never ~/.ssh/config
    index_url: str | None = None    # package index settings, [defaults] applied: see PackageIndex
    extra_index_urls: tuple[str, ...] | None = None
    system_certs: bool | None = None
    # setup's key, for admin_user; None: identity_file (one key for both). Deploys never use it.
    admin_identity_file: Path | None = None

    def carries(self, project: str) -> bool:
        return project in self.projects


@dataclass(frozen=True)
class PackageIndex:
    """Where uv on a host finds a project's packages: the project's settings over the host's over
    [defaults]. Empty (the default) leaves uv as the host's admin configured it."""

    url: str | None = None                 # uv's default index (PEP 503 simple API)
    extra: tuple[str, ...] = ()            # indexes tried before it
    system_certs: bool = False             # trust the host's certificate store (a company CA)

    @property
    def empty(self) -> bool:
        return self.url is None and not self.extra and not self.system_certs


def package_index(host: Host, project: Project) -> PackageIndex:
    """The settings uv uses for `project` on `host`: each key from the project if it sets it,
    else from the host (which already carries [defaults])."""
    def pick(name):
        value = getattr(project, name)
        return value if value is not None else getattr(host, name)
    return PackageIndex(url=pick("index_url"), extra=tuple(pick("extra_index_urls") or ()),
                        system_certs=bool(pick("system_certs")))


@dataclass(frozen=True)
class Config:
    """A whole, validated hosts.toml. Mappings keep the file's order."""

    path: Path
    defaults: Defaults
    projects: Mapping[str, Project]
    hosts: Mapping[str, Host]
    groups: Mapping[str, tuple[str, ...]]   # direct members, hosts or groups
    ports: Mapping[str, registry.PortRange]  # the standard's ranges plus this file's

    @property
    def default_target(self) -> str | None:
        return self.defaults.default_target


def hosts_file_path(environ: Mapping[str, str] | None = None) -> Path:
    """$AYNA_FAB_HOSTS if set and non-empty, else ./hosts.toml."""
    env = os.environ if environ is None else environ
    return Path(env.get(ENV_VAR) or DEFAULT_FILE).expanduser()


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a hosts.toml (default: hosts_file_path()); ConfigError if bad."""
    return _Loader(Path(path) if path is not None else hosts_file_path()).load()


# --- helpers that describe values in messages -----------------------------------

def _dotted(*parts: str) -> str:
    """A TOML-style dotted key; odd parts quoted so newlines cannot reach a terminal."""
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p) for p in parts)


def _at(table: str, name: str) -> str:
    """The dotted key of `name` inside `table` ("" for the top level)."""
    return _dotted(*table.split("."), name) if table else _dotted(name)


def _did_you_mean(value: str, known: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value, known, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _kind(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "an array", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)


def _describe(ch: str) -> str:
    if ch == "\0":
        return "a NUL byte"
    if ch in "\r\n":
        return "a newline"
    if ch.isspace():
        return "whitespace"
    if not ch.isascii():
        return f"the non-ASCII character {ch!r} (U+{ord(ch):04X})"
    if not ch.isprintable():
        return f"the control character {ch!r}"
    if ch in SHELL_META:
        return f"the shell metacharacter {ch!r}"
    if ch.isupper():
        return f"the uppercase letter {ch!r}"
    return f"the character {ch!r}"


def _first_bad(value: str, allowed: frozenset[str]) -> str | None:
    return next((_describe(ch) for ch in value if ch not in allowed), None)


def _is_hostname(value: str) -> bool:
    if "%" not in value:  # no IPv6 zone ids: ipaddress accepts anything after '%'
        try:
            ipaddress.ip_address(value)
            return True
        except ValueError:
            pass
    name = value[:-1] if value.endswith(".") else value
    labels = name.split(".")
    return (0 < len(name) <= 253 and all(DNS_LABEL_RE.fullmatch(lb) for lb in labels)
            and not labels[-1].isdigit())


# --- the loader ------------------------------------------------------------------

class _Loader:
    """Walks the parsed TOML once; every check raises through `fail`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.folder = path.absolute().parent  # relative local paths resolve here

    def fail(self, key: str | None, problem: str, fix: str) -> NoReturn:
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        raise ConfigError(where + problem, hint=fix)

    # reading

    def parse(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self.fail(None, "file not found",
                      f"create it, or point {ENV_VAR} at your hosts.toml")
        except OSError as exc:
            self.fail(None, f"cannot read: {exc.strerror}", "check the path and its permissions")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[:exc.start].count(b"\n") + 1
            raise ConfigError(f"{self.path}:{line}: not valid UTF-8",
                              hint="save the file as UTF-8") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            msg = str(exc)
            at = re.search(r" \(at line (\d+), column (\d+)\)", msg)
            if at:
                line = at.group(1)
                raise ConfigError(
                    f"{self.path}:{line}:{at.group(2)}: TOML syntax error: "
                    f"{msg.replace(at.group(0), '')}",
                    hint=f"fix the syntax on line {line} (see https://toml.io)") from None
            raise ConfigError(f"{self.path}: TOML syntax error: {msg}",
                              hint="fix the syntax (see https://toml.io)") from None

    # generic shapes

    def table(self, value: Any, key: str, known: tuple[str, ...] | None) -> dict[str, Any]:
        if not isinstance(value, dict):
            shape = f"[{key}.NAME] tables" if key in ("hosts", "projects") else f"a [{key}] table"
            self.fail(key, f"must be a table, got {_kind(value)}", f"write it as {shape}")
        for name in value:
            if known is not None and name not in known:
                fix = _did_you_mean(name, known).strip() or f"known keys here: {', '.join(known)}"
                self.fail(_at(key, name), f"unknown key {name!r}", fix)
        return value

    def typed(self, tbl: dict[str, Any], key: str, name: str, kind: type | tuple[type, ...],
              want: str, default: Any, example: str) -> Any:
        if name not in tbl:
            if default is _REQUIRED:
                self.fail(_at(key, name), "is required",
                          f"add {name} = {example} under [{key}]")
            return default
        value = tbl[name]
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            self.fail(_at(key, name), f"must be {want}, got {_kind(value)}"
                      f" ({shown})", f"write {name} = {example}")
        return value

    def string(self, tbl, key, name, default=None, example='"..."') -> str | None:
        return self.typed(tbl, key, name, str, "a string", default, example)

    def integer(self, tbl, key, name, default, example) -> int:
        return self.typed(tbl, key, name, int, "an integer", default, example)

    def strings(self, tbl, key, name, default, example, allow_empty=False) -> list[str] | None:
        items = self.typed(tbl, key, name, list, "an array of strings", default, example)
        if items is None:
            return None
        where = _at(key, name)
        if not items and not allow_empty:
            self.fail(where, "must not be empty", f"write {name} = {example}")
        for item in items:
            if not isinstance(item, str):
                self.fail(where, f"must hold only strings, got {_kind(item)} ({item!r})",
                          f"write {name} = {example}")
        dupes = sorted({i for i in items if items.count(i) > 1})
        if dupes:
            self.fail(where, f"lists {dupes[0]!r} twice", "list each name once")
        return items

    # value rules

    def name(self, key: str, value: str, what: str) -> str:
        if not NAME_RE.fullmatch(value):
            bad = _first_bad(value, frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-"))
            why = f": it contains {bad}" if bad else ""
            if not value:
                why = ": it is empty"
            elif not bad and not value[0].isalpha():
                why = ": it must start with a letter"
            elif not bad:
                why = ": it is longer than 32 characters"
            self.fail(key, f"{what} {value!r} is not a valid name{why}", f"use {NAME_RULE}")
        return value

    def hostname(self, key: str, value: str) -> str:
        if not _is_hostname(value):
            bad = _first_bad(value, frozenset("abcdefghijklmnopqrstuvwxyz"
                                              "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:"))
            why = f": it contains {bad}" if bad else ""
            self.fail(key, f"{value!r} is not a DNS name or an IP address{why}",
                      "write a DNS name such as prod.example.org, or an IPv4/IPv6 address "
                      "(no brackets, no zone id); ~/.ssh/config is not read: a bastion is a "
                      "host entry of its own, named by gateway")
        return value

    def path_chars(self, key: str, value: str, allow_tilde: bool) -> None:
        rest = value[1:] if allow_tilde and (value == "~" or value.startswith("~/")) else value
        bad = "it is empty" if not value else _first_bad(rest, PATH_CHARS)
        if bad:
            self.fail(key, f"path {value!r} is not allowed: "
                      + (bad if not value else f"it contains {bad}"),
                      "use letters, digits and . _ + @ % , : = / - only (no spaces, quotes "
                      "or shell metacharacters); rename the directory if needed")

    def remote_path(self, key: str, value: str) -> str:
        self.path_chars(key, value, allow_tilde=False)
        # Remote paths reach unit files: systemd reads '%' as a specifier, and PATH= splits at ':'.
        for ch, why in (("%", "systemd reads it as a specifier (%h, %n...)"),
                        (":", "it splits the units' PATH")):
            if ch in value:
                self.fail(key, f"path {value!r} is not allowed: it contains {ch!r}, and {why}",
                          "use letters, digits and . _ + @ , = / - only; rename the directory if needed")
        parts = value.split("/")
        if not value.startswith("/"):
            self.fail(key, f"{value!r} must be an absolute path on the host",
                      "write an absolute path such as /opt/ayna")
        if ".." in parts or "." in parts:
            self.fail(key, f"{value!r} must not contain '.' or '..' components",
                      "write the real absolute path, such as /opt/ayna")
        if value == "/" or "" in parts[1:]:
            fixed = "/" + "/".join(p for p in parts if p)
            self.fail(key, f"{value!r} must be a normalized directory below /",
                      f"write {fixed!r}" if fixed != "/" else "write a path such as /opt/ayna")
        return value

    def local_path(self, key: str, value: str) -> Path:
        """Resolved against the hosts.toml's folder; no filesystem access."""
        self.path_chars(key, value, allow_tilde=True)
        path = Path(value).expanduser()
        return Path(os.path.normpath(path if path.is_absolute() else self.folder / path))

    def optional_local_path(self, tbl, key, name, example) -> Path | None:
        value = self.string(tbl, key, name, None, example)
        return None if value is None else self.local_path(_at(key, name), value)

    def user(self, tbl, key, name, default) -> str:
        value = self.string(tbl, key, name, default, '"adonis"')
        return self.name(_at(key, name), value, "user")

    # sections

    def load(self) -> Config:
        data = self.table(self.parse(), "", TOP_KEYS)
        defaults = self.defaults(self.table(data.get("defaults", {}), "defaults", DEFAULTS_KEYS))
        projects, ports = self.projects(data)
        hosts = self.hosts(data, defaults, projects)
        groups = self.groups(data, hosts, projects)
        self.cross_checks(defaults, projects, hosts, groups)
        return Config(self.path, defaults, MappingProxyType(projects), MappingProxyType(hosts),
                      MappingProxyType(groups), MappingProxyType(ports))

    def defaults(self, tbl: dict[str, Any]) -> Defaults:
        k = "defaults"
        keep = self.integer(tbl, k, "keep_releases", 5, "5")
        if keep < 2:
            self.fail("defaults.keep_releases", f"must be at least 2, got {keep}",
                      "write keep_releases = 2 or more: the active release and the previous "
                      "good one are always kept for rollback")
        timeout = self.typed(tbl, k, "connect_timeout", (int, float), "a number of seconds",
                             10, "10")
        if not 0 < timeout <= 600:
            self.fail("defaults.connect_timeout", f"must be over 0 and at most 600 seconds, "
                      f"got {timeout}",
                      "write connect_timeout = 10")
        if timeout != int(timeout):  # Fabric truncates it to whole seconds: 0.5 would become 0, no timeout
            self.fail("defaults.connect_timeout", f"must be a whole number of seconds, got {timeout}",
                      f"write connect_timeout = {int(timeout) + 1} (SSH connects in whole seconds)")
        target = self.string(tbl, k, "default_target", None, '"production"')
        known_hosts = self.optional_local_path(tbl, k, "known_hosts", '"~/.ssh/known_hosts"')
        return Defaults(
            user=self.user(tbl, k, "user", "adonis"),
            admin_user=self.user(tbl, k, "admin_user", "root"),
            base_dir=self.remote_path("defaults.base_dir",
                                      self.string(tbl, k, "base_dir", "/opt/ayna", '"/opt/ayna"')),
            keep_releases=keep,
            identity_file=self.optional_local_path(tbl, k, "identity_file", '"~/.ssh/id_ed25519"'),
            admin_identity_file=self.optional_local_path(tbl, k, "admin_identity_file",
                                                         '"~/.ssh/id_ed25519_admin"'),
            known_hosts=known_hosts or Path.home() / ".ssh" / "known_hosts",
            connect_timeout=float(timeout),
            default_target=None if target is None else self.name(
                "defaults.default_target", target, "default_target"),
            keep_backups=self.keep_backups(tbl, k, 10),
            **self.index_settings(tbl, k),
        )

    def projects(self, data: dict[str, Any]
                 ) -> tuple[dict[str, Project], dict[str, registry.PortRange]]:
        # No projects is fine: a bare inventory (e.g. the sandbox's) is enough to set up hosts.
        tables = self.table(data.get("projects", {}), "projects", None)
        projects: dict[str, Project] = {}
        ports: dict[str, registry.PortRange] = dict(registry.STANDARD)
        for name, tbl in tables.items():
            self.name(_dotted("projects", name), name, "project")
            k = f"projects.{name}"
            tbl = self.table(tbl, k, PROJECT_KEYS)
            services = tuple(self.strings(tbl, k, "services", list(SERVICES),
                                          '["web", "api", "celery", "beat"]'))
            for service in services:
                if service not in SERVICES:
                    self.fail(f"{k}.services", f"unknown service {service!r}",
                              _did_you_mean(service, SERVICES)
                              + f"services are: {', '.join(SERVICES)}")
            env = self.string(tbl, k, "env", _REQUIRED, '"production"')
            if env not in ENVS:
                self.fail(f"{k}.env", f"unknown env {env!r}",
                          _did_you_mean(env, ENVS) + f"env is one of: {', '.join(ENVS)}")
            ports = self.port_range(tbl, k, name, ports)
            migrate = self.string(tbl, k, "migrate_host", None, '"prod"')
            projects[name] = Project(
                name=name,
                source=self.local_path(f"{k}.source",
                                       self.string(tbl, k, "source", _REQUIRED, f'"../{name}"')),
                port_base=ports[name].base,
                services=services,
                env=env,
                env_file=self.optional_local_path(tbl, k, "env_file", '".env.production"'),
                health=self.health(tbl, k, services),
                migrate_host=None if migrate is None else self.name(
                    f"{k}.migrate_host", migrate, "migrate_host"),
                create_database=self.typed(tbl, k, "create_database", bool, "true or false",
                                           False, "false"),
                **self.app_paths(tbl, k),
                **self.fleet_settings(tbl, k),
                **self.django_settings(tbl, k, services),
                **self.index_settings(tbl, k),
                **self.build_and_hooks(tbl, k),
            )
        return projects, ports

    def build_and_hooks(self, tbl, k) -> dict[str, Any]:
        """Build steps and hooks: arrays of tables, each command an argv (never a shell string)."""
        steps = tuple(self.build_step(t, f"{k}.build[{i}]") for i, t in enumerate(self.tables(tbl, k, "build")))
        hooks = tuple(self.hook(t, f"{k}.hooks[{i}]") for i, t in enumerate(self.tables(tbl, k, "hooks")))
        for what, items in (("build", steps), ("hooks", hooks)):
            names = [x.name for x in items]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                self.fail(f"{k}.{what}", f"names {dupes[0]!r} twice", "give each one a name of its own")
        failure = self.string(tbl, k, "hook_failure", "warn", '"warn"')
        if failure not in HOOK_FAILURE:
            self.fail(f"{k}.hook_failure", f"unknown setting {failure!r}",
                      'write hook_failure = "warn" (a failed hook after the flip is a warning, exit 0) '
                      'or "fail" (exit 1; what is live stays live)')
        return {"build": steps, "hooks": hooks, "hook_failure": failure}

    def tables(self, tbl, k, name) -> list[dict[str, Any]]:
        items = self.typed(tbl, k, name, list, "an array of tables", [], f"[[{k}.{name}]] tables")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                self.fail(f"{k}.{name}[{i}]", f"must be a table, got {_kind(item)}",
                          f"write each one as a [[{k}.{name}]] table")
        return items

    def argv(self, tbl, key) -> tuple[str, ...]:
        argv = self.strings(tbl, key, "command", _REQUIRED, '["sh", "-c", "npm ci && npm run build"]')
        for arg in argv:
            if not arg or any(ord(c) < 32 or c == "\x7f" for c in arg):
                self.fail(f"{key}.command", f"{arg!r} is empty or holds a control character",
                          "write each argument as plain text; for a shell line use [\"sh\", \"-c\", \"...\"]")
        return tuple(argv)

    def timeout(self, tbl, key, default) -> int:
        seconds = self.integer(tbl, key, "timeout", default, str(default))
        if not 1 <= seconds <= 7200:
            self.fail(f"{key}.timeout", f"must be 1-7200 seconds, got {seconds}", f"write timeout = {default}")
        return seconds

    def build_step(self, tbl, key) -> BuildStep:
        tbl = self.table(tbl, key, BUILD_KEYS)
        name = self.name(f"{key}.name", self.string(tbl, key, "name", _REQUIRED, '"assets"'), "build step")
        outputs = self.strings(tbl, key, "outputs", _REQUIRED, '["static/dist"]')
        for out in outputs:
            top = out.split("/", 1)[0]
            if top in RESERVED_OUTPUTS or top.startswith(".ayna-"):
                self.fail(f"{key}.outputs", f"{out!r} is a path every release uses for itself",
                          "build into another directory")
            if not REL_PATH_RE.fullmatch(out) or ".." in out.split("/"):
                self.fail(f"{key}.outputs", f"{out!r} is not a relative path inside the project",
                          'write a path such as "src/web/static/dist"')
        return BuildStep(name=name, command=self.argv(tbl, key), outputs=tuple(outputs),
                         timeout=self.timeout(tbl, key, 600))

    def hook(self, tbl, key) -> Hook:
        tbl = self.table(tbl, key, HOOK_KEYS)
        name = self.name(f"{key}.name", self.string(tbl, key, "name", _REQUIRED, '"notify"'), "hook")
        phase = self.string(tbl, key, "phase", _REQUIRED, '"after-success"')
        if phase not in HOOK_PHASES:
            self.fail(f"{key}.phase", f"unknown phase {phase!r}",
                      _did_you_mean(phase, HOOK_PHASES) + f"phases, in order: {', '.join(HOOK_PHASES)}")
        on = self.string(tbl, key, "on", "host", '"host"')
        if on not in HOOK_ON:
            self.fail(f"{key}.on", f"unknown place {on!r}", 'write on = "host" (every host) or "laptop"')
        if on == "laptop" and phase not in LAPTOP_PHASES:
            self.fail(f"{key}.phase", f"a laptop hook runs once the outcome is known, not at {phase}",
                      f"use phase = {' or '.join(repr(p) for p in LAPTOP_PHASES)}, or on = \"host\"")
        once = self.typed(tbl, key, "once", bool, "true or false", False, "true")
        if once and on == "laptop":
            self.fail(f"{key}.once", "a laptop hook runs once already", "remove once")
        return Hook(name=name, phase=phase, command=self.argv(tbl, key), on=on, once=once,
                    timeout=self.timeout(tbl, key, 300))

    def port_range(self, tbl, k, name, ports) -> dict[str, registry.PortRange]:
        standard = registry.STANDARD.get(name)
        base = self.integer(tbl, k, "port_base", standard.base if standard else None,
                            str(standard.base if standard else registry.next_free_base(ports)))
        if base is None:
            self.fail(f"{k}.port_base", f"{name} is not in the standard's port registry, so "
                      "it needs its own range of 10 ports",
                      f"add port_base = {registry.next_free_base(ports)} (any free range "
                      f"of 10 from {registry.MIN_PORT})")
        try:
            return registry.claim(ports, name, base)
        except registry.RegistryError as exc:
            self.fail(f"{k}.port_base", str(exc), exc.fix)

    def fleet_settings(self, tbl, k) -> dict[str, str]:
        raw = tbl.get("batch", "all")
        if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not BATCH_RE.fullmatch(str(raw)):
            self.fail(f"{k}.batch", f"{raw!r} is not a batch size",
                      'write batch = "all", a number of hosts such as 2, or a percentage such as "25%"')
        on_failure = self.string(tbl, k, "on_failure", "rollback", '"rollback"')
        if on_failure not in ON_FAILURE:
            self.fail(f"{k}.on_failure", f"unknown policy {on_failure!r}",
                      'write on_failure = "rollback" (flipped hosts go back) or "stop" (they stay)')
        return {"batch": str(raw), "on_failure": on_failure,
                "keep_backups": self.keep_backups(tbl, k, None),
                "backup_before_migrate": self.typed(tbl, k, "backup_before_migrate", bool, "true or false",
                                                    True, "true")}

    def keep_backups(self, tbl, k, default):
        keep = self.integer(tbl, k, "keep_backups", default, "10")
        if keep is not None and not 1 <= keep <= 1000:
            self.fail(f"{k}.keep_backups", f"must be 1-1000, got {keep}", "write keep_backups = 10")
        return keep

    def app_paths(self, tbl, k) -> dict[str, str]:
        """Where the code sits in a release; these reach unit files, so allowlists only."""
        rules = {"django_dir": (REL_PATH_RE, 'a relative path such as src/web, or "." (the project\'s root)'),
                 "asgi_dir": (REL_PATH_RE, 'a relative path such as src, or "." (the project\'s root)'),
                 "wsgi_app": (APP_RE, "module:attribute, such as config.wsgi:application"),
                 "asgi_app": (APP_RE, "module:attribute, such as api.main:app"),
                 "celery_app": (MODULE_RE, "a module such as config")}
        out = {}
        for name, (pattern, want) in rules.items():
            value = self.string(tbl, k, name, APP_DEFAULTS[name], f'"{APP_DEFAULTS[name]}"')
            if value == "." and name.endswith("_dir"):  # manage.py or the app at the project's root
                out[name] = value
                continue
            if not pattern.fullmatch(value) or ".." in value.split("/"):
                self.fail(f"{k}.{name}", f"{value!r} is not {want}",
                          f'write {name} = "{APP_DEFAULTS[name]}"')
            out[name] = value
        return out

    def django_settings(self, tbl, k, services) -> dict[str, Any]:
        checks = self.string(tbl, k, "checks", "errors", '"errors"')
        if checks not in CHECKS:
            self.fail(f"{k}.checks", f"unknown checks level {checks!r}",
                      _did_you_mean(checks, CHECKS) + 'write checks = "errors" (Django\'s errors fail a '
                      'deploy, its warnings are shown) or "strict" (warnings fail it too)')
        django = self.typed(tbl, k, "django", bool, "true or false", "web" in services, "true")
        if "web" in services and not django:
            self.fail(f"{k}.django", "is false, but the project runs web (gunicorn serves Django)",
                      "remove django = false, or remove web from services")
        return {"checks": checks, "django": django}

    def index_settings(self, tbl, k) -> dict[str, Any]:
        """index_url, extra_index_urls, system_certs: None when not set here, so another level may."""
        url = self.string(tbl, k, "index_url", None, '"https://pypi.example.org/simple"')
        extra = self.strings(tbl, k, "extra_index_urls", None, '["https://pypi.example.org/simple"]',
                             allow_empty=True)   # [] on a project: none, whatever the host says
        return {"index_url": None if url is None else self.index_url(f"{k}.index_url", url),
                "extra_index_urls": None if extra is None else tuple(
                    self.index_url(f"{k}.extra_index_urls", u) for u in extra),
                "system_certs": self.typed(tbl, k, "system_certs", bool, "true or false", None, "true")}

    def index_url(self, key: str, value: str) -> str:
        """An index URL goes into uv's and pip's configuration on hosts: plain http(s) or file URLs,
        and never a password (hosts.toml is not a place for secrets)."""
        fix = ('write a URL such as "https://pypi.example.org/simple"; put credentials in the deploy '
               "user's ~/.netrc on the host, which uv and pip read")
        bad = _first_bad(value, INDEX_URL_CHARS | {"@"})
        if bad:
            self.fail(key, f"{json.dumps(value)} is not an index URL: it contains {bad}", fix)
        parts = urllib.parse.urlsplit(value)
        if "@" in parts.netloc:
            self.fail(key, "must not carry credentials (user:password@)", fix)
        if "@" in value:
            self.fail(key, f"{value!r} is not an index URL: it contains the character '@'", fix)
        if parts.scheme in ("http", "https"):
            if not parts.hostname or not _is_hostname(parts.hostname):
                self.fail(key, f"{value!r} names no valid host", fix)
        elif parts.scheme == "file":
            if parts.netloc or not parts.path.startswith("/"):
                self.fail(key, f"{value!r} is not a file:///absolute/path URL", fix)
        else:
            self.fail(key, f"{value!r} is not an http://, https:// or file:/// URL", fix)
        return value

    def health(self, tbl, k, services) -> Mapping[str, str]:
        given = self.table(tbl.get("health", {}), f"{k}.health", HTTP_SERVICES)
        health = {s: DEFAULT_HEALTH[s] for s in HTTP_SERVICES if s in services}
        for service, value in given.items():
            key = f"{k}.health.{service}"
            if service not in services:
                self.fail(key, f"{service} is not in {k}.services",
                          f"add {service!r} to services, or remove this health entry")
            if not isinstance(value, str):
                self.fail(key, f"must be a string, got {_kind(value)}",
                          f'write {service} = "/health"')
            bad = _first_bad(value, URL_PATH_CHARS)
            if not value.startswith("/") or bad or "/../" in value + "/":
                self.fail(key, f"{value!r} is not a plain URL path"
                          + (f": it contains {bad}" if bad else ""),
                          'write a path starting with "/", such as "/health/" (no query string)')
            health[service] = value
        return MappingProxyType(health)

    def hosts(self, data, defaults: Defaults, projects: dict[str, Project]) -> dict[str, Host]:
        tables = self.table(data.get("hosts", {}), "hosts", None)
        if not tables:
            self.fail("hosts", "no hosts defined",
                      'add a [hosts.NAME] table with hostname and projects')
        hosts: dict[str, Host] = {}
        for name, tbl in tables.items():
            self.name(_dotted("hosts", name), name, "host")
            if name in projects:
                self.fail(_dotted("hosts", name), f"{name!r} is already a project name",
                          "rename the host: a name means one thing")
            k = f"hosts.{name}"
            tbl = self.table(tbl, k, HOST_KEYS)
            port = self.integer(tbl, k, "port", 22, "22")
            if not 1 <= port <= 65535:
                self.fail(f"{k}.port", f"must be 1-65535, got {port}", "write port = 22")
            # A host may carry no project yet: a fresh server still gets setup and status.
            carried = self.strings(tbl, k, "projects", [], '["uavcrew"]', allow_empty=True)
            for project in carried:
                if project not in projects:
                    self.fail(f"{k}.projects", f"unknown project {project!r}",
                              _did_you_mean(project, list(projects))
                              + "define a [projects.NAME] table for it, or use one of: "
                              + ", ".join(projects))
            identity = self.optional_local_path(tbl, k, "identity_file", '"~/.ssh/id_ed25519"')
            admin_identity = self.optional_local_path(tbl, k, "admin_identity_file",
                                                      '"~/.ssh/id_ed25519_admin"')
            known_hosts = self.optional_local_path(tbl, k, "known_hosts", '"~/.ssh/known_hosts"')
            admin_user = self.user(tbl, k, "admin_user", defaults.admin_user)
            hosts[name] = Host(
                name=name,
                hostname=self.hostname(f"{k}.hostname",
                                       self.string(tbl, k, "hostname", _REQUIRED,
                                                   '"prod.example.org"')),
                port=port,
                user=self.deploy_user(tbl, k, defaults, admin_user),
                admin_user=admin_user,
                identity_file=identity or defaults.identity_file,
                known_hosts=known_hosts or defaults.known_hosts,
                projects=tuple(carried),
                **self.host_extras(tbl, k, defaults),
                admin_identity_file=admin_identity or defaults.admin_identity_file,
            )
        return hosts

    def deploy_user(self, tbl, k, defaults: Defaults, admin_user: str) -> str:
        """The user deploys log in as and the units run as: never one with rights of its own to lose
        (root, the admin login, a system account), or the app would run with them."""
        user = self.user(tbl, k, "user", defaults.user)
        key = f"{k}.user" if "user" in tbl else "defaults.user"
        if user in RESERVED_USERS:
            self.fail(key, f"the deploy user must not be {user!r}: the units run as this user",
                      'write user = "adonis" (setup creates it), a user that exists only to run the apps')
        if user == admin_user:
            self.fail(key, f"the deploy user {user!r} is also admin_user: deploys and the apps would "
                      "have setup's rights", 'give deploys a user of their own, such as user = "adonis"')
        return user

    def host_extras(self, tbl, k, defaults: Defaults) -> dict[str, Any]:
        """gateway (checked against the other hosts in cross_checks) and the index settings,
        with [defaults] applied."""
        gateway = self.string(tbl, k, "gateway", None, '"bastion"')
        index = self.index_settings(tbl, k)
        for name, value in index.items():
            if value is None:
                index[name] = getattr(defaults, name)
        return {"gateway": None if gateway is None else self.name(f"{k}.gateway", gateway, "gateway"),
                **index}

    def gateways(self, hosts: dict[str, Host]) -> None:
        """Every gateway is another host entry, and no chain of gateways loops."""
        for name, host in hosts.items():
            if host.gateway is None:
                continue
            key = f"hosts.{name}.gateway"
            if host.gateway not in hosts:
                self.fail(key, f"unknown host {host.gateway!r}",
                          _did_you_mean(host.gateway, list(hosts))
                          + "a gateway is a host entry of its own: add [hosts." + host.gateway
                          + "] with its hostname, port and user")
            trail = [name]
            hop = host.gateway
            while hop is not None:
                if hop in trail:
                    self.fail(key, "gateways form a cycle: " + " -> ".join(trail + [hop]),
                              "a bastion reaches the host, never the other way round: remove one gateway")
                trail.append(hop)
                hop = hosts[hop].gateway

    def groups(self, data, hosts, projects) -> dict[str, tuple[str, ...]]:
        tbl = self.table(data.get("groups", {}), "groups", None)
        groups: dict[str, tuple[str, ...]] = {}
        for name in tbl:
            key = _dotted("groups", name)
            self.name(key, name, "group")
            for kind, names in (("host", hosts), ("project", projects)):
                if name in names:
                    self.fail(key, f"{name!r} is already a {kind} name",
                              "rename the group: a name means one thing in a TARGET")
            groups[name] = tuple(self.strings(tbl, "groups", name, _REQUIRED, '["prod"]'))
        for name, members in groups.items():
            for member in members:
                if member not in hosts and member not in groups:
                    known = [*hosts, *groups]
                    self.fail(_dotted("groups", name), f"unknown host or group {member!r}",
                              _did_you_mean(member, known) + "known: " + ", ".join(known))
        self.no_cycles(groups)
        return groups

    def no_cycles(self, groups: dict[str, tuple[str, ...]]) -> None:
        done: set[str] = set()

        def visit(name: str, trail: list[str]) -> None:
            if name in trail:
                cycle = trail[trail.index(name):] + [name]
                self.fail(_dotted("groups", cycle[0]), "groups form a cycle: "
                          + " -> ".join(cycle), "remove one of these memberships")
            if name in done or name not in groups:
                return
            for member in groups[name]:
                visit(member, trail + [name])
            done.add(name)

        for name in groups:
            visit(name, [])

    def no_name_clashes(self, projects) -> None:
        """Two projects must not share a name on the host once it is rewritten: the sudoers alias
        (AYNA_MY_APP, '-' becomes '_') or a unit ({project}-{service}). A clash would make setup
        install a second sudoers drop-in that breaks sudo, or one project's units overwrite another's."""
        seen: dict[str, str] = {}
        for name in projects:
            for kind, derived in [("sudoers alias", "AYNA_" + name.upper().replace("-", "_"))] + [
                    ("unit", f"{name}-{service}.service") for service in SERVICES]:
                other = seen.setdefault(f"{kind} {derived}", name)
                if other != name:
                    self.fail(_dotted("projects", name),
                              f"projects {other!r} and {name!r} would share the {kind} {derived}",
                              "rename one of them (names that differ only by '-' and '_' clash)")

    def cross_checks(self, defaults, projects, hosts, groups) -> None:
        self.gateways(hosts)
        self.no_name_clashes(projects)
        for name, project in projects.items():
            carriers = [h for h in hosts.values() if h.carries(name)]
            if not carriers:
                self.fail(_dotted("projects", name), f"project {name!r} is on no host",
                          "add it to some host's projects, or remove the table")
            if project.migrate_host and project.migrate_host not in {h.name for h in carriers}:
                self.fail(f"projects.{name}.migrate_host",
                          f"{project.migrate_host!r} is not a host that carries {name}",
                          "use one of: " + ", ".join(h.name for h in carriers))
        target = defaults.default_target
        if target and target not in hosts and target not in groups:
            known = [*hosts, *groups]
            self.fail("defaults.default_target", f"unknown host or group {target!r}",
                      _did_you_mean(target, known) + "known: " + ", ".join(known))

