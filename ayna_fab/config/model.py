"""Load hosts.toml once, validate all of it, and return typed, frozen objects.

This is the only place that validates configuration. Everything after it (command builders,
SSH, unit files) trusts these values, so a bad value stops here, before anything remote
happens, with a message naming the file, the dotted key and the fix.

Every key's place, type, default and rule is a row of `config.schema.KEYS`, and the
dataclasses below take their fields and defaults from it. This module reads the file, applies
the rows, checks what lies between keys (a deploy user that is also admin_user, unknown
projects, gateways and groups, port ranges, cycles) and reports every problem of the file in
one ConfigError. A value that failed is not used by any later check, so one mistake is
reported once, not again by each check that depends on it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ayna_fab.config import registry
# BATCH_RE, ENVS, HOOK_PHASES, NAME_RE, NAME_RULE, ON_FAILURE and TOP_KEYS are read as config.X elsewhere.
from ayna_fab.config.rules import (BATCH_RE, ENVS, HOOK_PHASES, LAPTOP_PHASES, NAME_RE, NAME_RULE,  # noqa: F401
                                   ON_FAILURE, RESERVED_USERS, SERVICES, At, Invalid, check_name, did_you_mean,
                                   dotted, kind)
from ayna_fab.config.schema import (REQUIRED, STRINGS, TOP_KEYS, Key, allowed, defaults_of, model,  # noqa: F401
                                    rows)
from ayna_fab.errors import ConfigError

ENV_VAR = "AYNA_FAB_HOSTS"
DEFAULT_FILE = "hosts.toml"
SEARCHED = (DEFAULT_FILE, "deploy/hosts.toml")   # in this order, when AYNA_FAB_HOSTS is unset
DEFAULT_HEALTH: Mapping[str, str] = MappingProxyType(dict(defaults_of("health")))
HTTP_SERVICES = tuple(DEFAULT_HEALTH)   # the ones with a port and a health endpoint
DEFAULTS_KEYS = allowed("defaults")
DEFAULT_PARALLEL: int = defaults_of("defaults")["parallel"]   # hosts worked on at once, unless set


@model("defaults")
class Defaults:
    """Values every host inherits unless it overrides them (fields: config.schema's [defaults] keys)."""


@model("build")
class BuildStep:
    """A command run on the laptop in a clean export of the deployed commit; the files under
    `outputs` go into the release although git does not hold them."""


@model("hook")
class Hook:
    """A command run at a named phase of deploy and rollback: on every host (in a release, as the
    deploy user, with the units' environment) or once on the laptop (notifications)."""

    @property
    def laptop(self) -> bool:
        return self.on == "laptop"


@model("project")
class Project:
    """One deployable project: where its code comes from and what it runs. Keys it shares with
    [defaults] or a host are None when it does not set them (see package_index)."""

    name: str

    @property
    def ports(self) -> registry.PortRange:
        return registry.PortRange(self.name, self.port_base)

    def port(self, service: str) -> int:
        return self.ports.port(service)

    @property
    def shared_env(self) -> str:
        """The file in shared/ that is linked into each release as .env."""
        return f".env.{self.env}"


@model("host")
class Host:
    """A server, with the defaults already applied: nothing left to merge. admin_identity_file is
    setup's key, for admin_user (None: identity_file); deploys never use it."""

    name: str

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


def hosts_file_path(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """$AYNA_FAB_HOSTS if set and non-empty, else ./hosts.toml, else ./deploy/hosts.toml if that
    exists (a project keeping its inventory beside its code); ./hosts.toml when neither does."""
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR):
        return Path(env[ENV_VAR]).expanduser()
    for candidate in SEARCHED:
        if ((cwd or Path()) / candidate).exists():
            return Path(candidate) if cwd is None else cwd / candidate
    return Path(DEFAULT_FILE) if cwd is None else cwd / DEFAULT_FILE


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a hosts.toml (default: hosts_file_path()); ConfigError naming every problem."""
    return _Loader(Path(path) if path is not None else hosts_file_path()).load()


def _at(table: str, name: str) -> str:
    """The dotted key of `name` inside the dotted key `table` ("" for the top level)."""
    return f"{table}.{dotted(name)}" if table else dotted(name)


BAD = object()      # a value whose problem is reported: nothing checks it further
ABSENT = object()   # a key the file does not set: the model's default applies


class _Values(dict):
    """One table's keys: what the file gives (read by its rule), ABSENT or BAD."""

    def ok(self, *names: str) -> bool:
        return all(self[n] is not BAD for n in names)

    def given(self) -> dict[str, Any]:
        return {n: v for n, v in self.items() if v is not ABSENT}

    def get_or(self, name: str, default: Any) -> Any:
        return default if self[name] is ABSENT else self[name]


def _members(name: str, hosts: Mapping[str, Any], groups: Mapping[str, Any],
             trail: tuple[str, ...] = ()) -> list[str] | None:
    """The hosts a host or group name stands for (None: no such name); a cycle or a bad group adds none."""
    if name in hosts:
        return [name]
    if name not in groups:
        return None
    if groups[name] is BAD or name in trail:
        return []
    out: list[str] = []
    for member in groups[name]:
        out += _members(member, hosts, groups, (*trail, name)) or []
    return out


# --- the loader ------------------------------------------------------------------

class _Loader:
    """Walks the parsed TOML once, reading every key by its row and collecting every problem."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.folder = path.absolute().parent  # relative local paths resolve here
        self.problems: list[tuple[str | None, str, str]] = []
        self.misspelled: set[str] = set()     # keys an unknown key was close to: not also "missing"

    def report(self, key: str | None, problem: str, fix: str) -> None:
        if (key, problem, fix) not in self.problems:
            self.problems.append((key, problem, fix))

    @contextmanager
    def checking(self, key: str | None = None):
        """Report an Invalid raised inside, at its own key or `key`, and go on."""
        try:
            yield
        except Invalid as exc:
            self.report(exc.key or key, exc.problem, exc.fix)

    def raise_problems(self) -> None:
        if len(self.problems) == 1:
            key, problem, fix = self.problems[0]
            raise ConfigError(f"{self.path}: {key}: {problem}" if key else f"{self.path}: {problem}", hint=fix)
        if self.problems:
            listed = "\n".join(f"  {key}: {problem}\n    -> {fix}" for key, problem, fix in self.problems)
            raise ConfigError(f"{self.path}: {len(self.problems)} problems\n{listed}",
                              hint="fix each as its line says; these are all the file's problems")

    # reading

    def parse(self) -> dict[str, Any]:
        def fail(where: str, problem: str, fix: str):
            raise ConfigError(f"{where}: {problem}", hint=fix) from None
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            fail(str(self.path), "file not found", f"create it (./hosts.toml or ./deploy/hosts.toml: ayna-fab init --write), "
                                             f"or point {ENV_VAR} at your hosts.toml")
        except OSError as exc:
            fail(str(self.path), f"cannot read: {exc.strerror}", "check the path and its permissions")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[:exc.start].count(b"\n") + 1
            fail(f"{self.path}:{line}", "not valid UTF-8", "save the file as UTF-8")
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            msg = str(exc)
            at = re.search(r" \(at line (\d+), column (\d+)\)", msg)
            if at:
                line = at.group(1)
                fail(f"{self.path}:{line}:{at.group(2)}", f"TOML syntax error: {msg.replace(at.group(0), '')}",
                     f"fix the syntax on line {line} (see https://toml.io)")
            fail(str(self.path), f"TOML syntax error: {msg}", "fix the syntax (see https://toml.io)")

    def table(self, value: Any, key: str, known: tuple[str, ...] | None) -> dict[str, Any] | None:
        """`value` if it is a table (None after reporting it); unknown keys reported and left out."""
        if not isinstance(value, dict):
            shape = f"[{key}.NAME] tables" if key in ("hosts", "projects") else f"a [{key}] table"
            self.report(key, f"must be a table, got {kind(value)}", f"write it as {shape}")
            return None
        if known is None:
            return value
        for name in value:
            if name not in known:
                close = did_you_mean(name, known)
                if close:
                    self.misspelled.add(_at(key, close.split("'")[1]))
                self.report(_at(key, name), f"unknown key {name!r}",
                            close.strip() or f"known keys here: {', '.join(known)}")
        return {n: v for n, v in value.items() if n in known}

    def value(self, tbl: dict[str, Any], k: str, key: Key, entity: str) -> Any:
        at = key.at(_at(k, key.name), self.folder)
        example = key.example.replace("{name}", entity)
        if key.name not in tbl:
            if key.default is not REQUIRED:
                return ABSENT
            if at.key not in self.misspelled:
                self.report(at.key, "is required", f"add {key.name} = {example} under [{k}]")
            return BAD
        with self.checking(at.key):
            return key.read(tbl[key.name], at, example)
        return BAD

    def section(self, raw: Any, k: str, section: str, entity: str = "") -> _Values | None:
        """Every key of `section` in the table `raw` at `k`; None if `raw` is no table."""
        tbl = self.table(raw, k, allowed(section))
        if tbl is None:
            return None
        return _Values({key.name: self.value(tbl, k, key, entity) for key in rows(section)})

    def name(self, key: str, value: str, what: str) -> bool:
        with self.checking(key):
            check_name(key, value, what)
            return True
        return False

    # sections

    def load(self) -> Config:
        data = self.table(self.parse(), "", TOP_KEYS)
        defaults = self.section(data.get("defaults", {}), "defaults", "defaults")
        projects, ports = self.projects(data)
        hosts = self.hosts(data, defaults, projects)
        groups = self.groups(data, hosts, projects)
        self.cross_checks(defaults, projects, hosts, groups)
        self.raise_problems()
        return Config(self.path, Defaults(**defaults.given()),
                      MappingProxyType({n: Project(name=n, **v.given()) for n, v in projects.items()}),
                      MappingProxyType({n: Host(name=n, **v.given()) for n, v in hosts.items()}),
                      MappingProxyType(groups), MappingProxyType(ports))

    def projects(self, data) -> tuple[dict[str, _Values], dict[str, registry.PortRange]]:
        """Each project's keys (the model's arguments once all are good) and the port ranges."""
        # No projects is fine: a bare inventory (e.g. the sandbox's) is enough to set up hosts.
        tables = self.table(data.get("projects", {}), "projects", None) or {}
        projects: dict[str, _Values] = {}
        ports: dict[str, registry.PortRange] = dict(registry.STANDARD)
        for name, raw in tables.items():
            k = dotted("projects", name)
            named = self.name(k, name, "project")
            values = self.section(raw, k, "project", name)
            if values is None:
                projects[name] = _Values(source=BAD)
                continue
            services = values.get_or("services", SERVICES)
            values["health"] = self.health(values, k, services)
            values["django"] = self.django(values, k, services)
            values["port_base"] = self.port_base(values, k, name, ports) if named else BAD
            values["build"] = self.steps(values, k, "build", BuildStep, name)
            values["hooks"] = self.steps(values, k, "hooks", Hook, name)
            self.api_place(values, k, services)
            projects[name] = values
        return projects, ports

    def health(self, values: _Values, k: str, services) -> Any:
        given = values["health"]
        if given is BAD:
            return BAD
        paths = self.section({} if given is ABSENT else given, f"{k}.health", "health")
        for service in ({} if given is ABSENT else given):
            if service in paths and services is not BAD and service not in services:
                self.report(f"{k}.health.{service}", f"{service} is not in {k}.services",
                            f"add {service!r} to services, or remove this health entry")
                paths[service] = BAD
        if not paths.ok(*paths) or services is BAD:
            return BAD
        return MappingProxyType({s: paths.get_or(s, DEFAULT_HEALTH[s]) for s in HTTP_SERVICES if s in services})

    def django(self, values: _Values, k: str, services) -> Any:
        if services is BAD or values["django"] is BAD:
            return BAD
        django = values.get_or("django", "web" in services)
        if "web" in services and not django:
            self.report(f"{k}.django", "is false, but the project runs web (gunicorn serves Django)",
                        "remove django = false, or remove web from services")
            return BAD
        return django

    def port_base(self, values: _Values, k: str, name: str, ports) -> Any:
        base = values["port_base"]
        if base is BAD:
            return BAD
        standard = registry.STANDARD.get(name)
        if base is ABSENT:
            if standard is None:
                if f"{k}.port_base" not in self.misspelled:
                    self.report(f"{k}.port_base", f"{name} is not in the standard's port registry, so "
                                "it needs its own range of 10 ports",
                                f"add port_base = {registry.next_free_base(ports)} (any free range "
                                f"of 10 from {registry.MIN_PORT})")
                return BAD
            base = standard.base
        try:
            ports.update(registry.claim(ports, name, base))
        except registry.RegistryError as exc:
            self.report(f"{k}.port_base", str(exc), exc.fix)
            return BAD
        return base

    def steps(self, values: _Values, k: str, what: str, make: type, project: str) -> Any:
        """Build steps or hooks: each an array item read as its section, and names unique."""
        items = values[what]
        if items in (BAD, ABSENT):
            return items
        section = "build" if what == "build" else "hook"
        read = [self.section(item, f"{k}.{what}[{i}]", section, project) for i, item in enumerate(items)]
        if section == "hook":
            for i, hook in enumerate(read):
                self.hook_place(hook, f"{k}.{what}[{i}]")
        names = [v["name"] for v in read if v["name"] is not BAD]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            self.report(f"{k}.{what}", f"names {dupes[0]!r} twice", "give each one a name of its own")
        if dupes or not all(v.ok(*v) for v in read):
            return BAD
        return tuple(make(**v.given()) for v in read)

    def api_place(self, values: _Values, k: str, services) -> None:
        """Where Caddy sends the API: only a project that runs it has one, its prefix leaves Django's
        health URL to Django, and its own domains are not the site's."""
        if services is BAD:
            return
        for key in ("api_prefix", "api_domains"):
            if values[key] not in (BAD, ABSENT, None, ()) and "api" not in services:
                self.report(f"{k}.{key}", "the project does not run api", f"remove {key}, or add \"api\" to services")
                values[key] = BAD
        prefix, health = values["api_prefix"], values["health"]
        if prefix not in (BAD, ABSENT, None) and health is not BAD and "web" in health:
            path = health["web"]
            if path == prefix or path.startswith(prefix + "/"):
                self.report(f"{k}.api_prefix", f"{prefix!r} takes Django's health URL {path!r} to the api",
                            "choose another prefix, such as \"/api\", or move web's health endpoint")
                values["api_prefix"] = BAD
        own, api = values["domains"], values["api_domains"]
        if own not in (BAD, ABSENT) and api not in (BAD, ABSENT):
            both = sorted(set(own) & set(api))
            if both:
                self.report(f"{k}.api_domains", f"{both[0]!r} is also one of the project's domains",
                            "serve the API under api_prefix there, or give it a domain of its own")
                values["api_domains"] = BAD

    def hook_place(self, hook: _Values, key: str) -> None:
        """A laptop hook runs once the outcome is known, and once only."""
        on, phase, once = hook.get_or("on", "host"), hook["phase"], hook.get_or("once", False)
        if on == "laptop" and phase is not BAD and phase not in LAPTOP_PHASES:
            self.report(f"{key}.phase", f"a laptop hook runs once the outcome is known, not at {phase}",
                        f"use phase = {' or '.join(repr(p) for p in LAPTOP_PHASES)}, or on = \"host\"")
            hook["phase"] = BAD
        if once is True and on == "laptop":
            self.report(f"{key}.once", "a laptop hook runs once already", "remove once")
            hook["once"] = BAD

    def hosts(self, data, defaults: _Values | None, projects: dict[str, _Values]) -> dict[str, _Values]:
        tables = self.table(data.get("hosts", {}), "hosts", None)
        if tables == {} and "hosts" not in self.misspelled:
            self.report("hosts", "no hosts defined", 'add a [hosts.NAME] table with hostname and projects')
        fallback = Defaults()   # [defaults]' own defaults, for what the file's [defaults] leaves out
        hosts: dict[str, _Values] = {}
        for name, raw in (tables or {}).items():
            k = dotted("hosts", name)
            self.name(k, name, "host")
            if name in projects:
                self.report(k, f"{name!r} is already a project name", "rename the host: a name means one thing")
            values = self.section(raw, k, "host", name)
            if values is None:
                hosts[name] = _Values(projects=BAD)
                continue
            for key in values.keys() & set(DEFAULTS_KEYS):
                if values[key] is ABSENT:
                    values[key] = BAD if defaults is None else defaults.get_or(key, getattr(fallback, key))
            if values["projects"] is not BAD:
                values["projects"] = self.carried(values.get_or("projects", ()), k, projects)
            self.deploy_user(values, raw, k)
            hosts[name] = values
        return hosts

    def carried(self, carried: tuple[str, ...], k: str, projects: dict[str, _Values]) -> Any:
        for project in carried:
            if project not in projects:
                self.report(f"{k}.projects", f"unknown project {project!r}",
                            did_you_mean(project, list(projects))
                            + "define a [projects.NAME] table for it, or use one of: " + ", ".join(projects))
                return BAD
        return tuple(carried)

    def deploy_user(self, values: _Values, raw: dict[str, Any], k: str) -> None:
        """The user deploys log in as and the units run as: never one with rights of its own to lose
        (root, the admin login, a system account), or the app would run with them."""
        user, admin_user = values["user"], values["admin_user"]
        key = f"{k}.user" if "user" in raw else "defaults.user"
        if user is BAD:
            return
        if user in RESERVED_USERS:
            self.report(key, f"the deploy user must not be {user!r}: the units run as this user",
                        'write user = "adonis" (setup creates it), a user that exists only to run the apps')
        elif user == admin_user:
            self.report(key, f"the deploy user {user!r} is also admin_user: deploys and the apps would "
                        "have setup's rights", 'give deploys a user of their own, such as user = "adonis"')
        else:
            return
        values["user"] = BAD

    def groups(self, data, hosts, projects) -> dict[str, tuple[str, ...]]:
        tbl = self.table(data.get("groups", {}), "groups", None) or {}
        groups: dict[str, Any] = {}
        for name, members in tbl.items():
            key = dotted("groups", name)
            groups[name] = BAD
            if not self.name(key, name, "group"):
                continue
            clash = next((what for what, names in (("host", hosts), ("project", projects)) if name in names), None)
            if clash:
                self.report(key, f"{name!r} is already a {clash} name",
                            "rename the group: a name means one thing in a TARGET")
                continue
            with self.checking(key):
                groups[name] = tuple(STRINGS.check(members, At(key, name), '["prod"]'))
        known = [*hosts, *groups]
        for name, members in groups.items():
            for member in () if members is BAD else members:
                if member not in known:
                    self.report(dotted("groups", name), f"unknown host or group {member!r}",
                                did_you_mean(member, known) + "known: " + ", ".join(known))
                    groups[name] = BAD
                    break
        self.no_cycles("groups", {n: m for n, m in groups.items() if m is not BAD},
                       "groups form a cycle: ", "remove one of these memberships")
        return groups

    def no_cycles(self, table: str, edges: dict[str, tuple[str, ...]], says: str, fix: str, field: str = "") -> None:
        """Report each cycle of `edges` (name -> names it leads to) once, at its first name."""
        done: set[str] = set()

        def visit(name: str, trail: list[str]) -> None:
            if name in trail:
                cycle = trail[trail.index(name):] + [name]
                key = dotted(table, cycle[0]) + (f".{field}" if field else "")
                self.report(key, says + " -> ".join(cycle), fix)
                done.update(cycle)
                return
            if name in done or name not in edges:
                return
            for member in edges[name]:
                visit(member, trail + [name])
            done.add(name)

        for name in edges:
            visit(name, [])

    def gateways(self, hosts: dict[str, _Values]) -> None:
        """Every gateway is another host entry, and no chain of gateways loops."""
        edges = {}
        for name, values in hosts.items():
            gateway = values.get("gateway", ABSENT)
            if gateway in (BAD, ABSENT, None):
                continue
            if gateway not in hosts:
                self.report(_at(dotted("hosts", name), "gateway"), f"unknown host {gateway!r}",
                            did_you_mean(gateway, list(hosts)) + "a gateway is a host entry of its own: add [hosts."
                            + gateway + "] with its hostname, port and user")
                continue
            edges[name] = (gateway,)
        self.no_cycles("hosts", edges, "gateways form a cycle: ",
                       "a bastion reaches the host, never the other way round: remove one gateway", "gateway")

    def sites(self, name: str, host: _Values, projects: dict[str, _Values]) -> None:
        """Caddy's sites on one host: a host's domains name its own projects, a domain belongs to
        one project, and ACME has an email to write to."""
        carried, by_project = host.get("projects", BAD), host.get("domains", BAD)
        if carried is BAD or by_project is BAD:
            return
        k = dotted("hosts", name)
        by_project = {} if by_project is ABSENT else by_project
        for project in by_project:
            if project not in carried:
                self.report(f"{k}.domains.{dotted(project)}", f"{project!r} is not one of this host's projects",
                            "add it to projects, or remove its domains here")
        owner: dict[str, str] = {}
        for project in carried:
            values = projects.get(project)
            if values is None or not values.ok("domains", "api_domains", "tls", "tls_email"):
                continue
            names = [*by_project.get(project, values.get_or("domains", ())), *values.get_or("api_domains", ())]
            for domain in names:
                other = owner.setdefault(domain, project)
                if other != project:
                    self.report(f"{k}.projects", f"{domain!r} is a domain of both {other!r} and {project!r} "
                                "on this host", "give each project domains of its own")
            tls = values.get_or("tls", None) or host.get_or("tls", "auto")
            email = values.get_or("tls_email", None) or host.get_or("tls_email", None)
            if names and tls == "auto" and not email and host["tls"] is not BAD:
                self.report(f"{dotted('projects', project)}.tls_email",
                            f'tls = "auto" asks Let\'s Encrypt for certificates on {name}, which needs an email',
                            'add tls_email = "ops@example.org" (here, on the host or in [defaults]), or '
                            'use tls = "internal" for a host the internet cannot reach')

    def no_name_clashes(self, projects) -> None:
        """Two projects must not share a name on the host once it is rewritten: the sudoers alias
        (AYNA_MY_APP, '-' becomes '_') or a unit ({project}-{service}). A clash would make setup
        install a second sudoers drop-in that breaks sudo, or one project's units overwrite another's."""
        seen: dict[str, str] = {}
        for name in projects:
            for what, derived in [("sudoers alias", "AYNA_" + name.upper().replace("-", "_"))] + [
                    ("unit", f"{name}-{service}.service") for service in SERVICES]:
                other = seen.setdefault(f"{what} {derived}", name)
                if other != name:
                    self.report(dotted("projects", name),
                                f"projects {other!r} and {name!r} would share the {what} {derived}",
                                "rename one of them (names that differ only by '-' and '_' clash)")
                    break

    def stages(self, projects, hosts, groups) -> None:
        """Each stage names hosts that carry the project, a host runs one stage of a project, and one
        machine (hostname and port) is not two host entries running it in different stages: one
        project has one port range and one set of units on a machine, so two stages would collide."""
        for name, project in projects.items():
            table = project.get("stages", ABSENT)
            if table in (BAD, ABSENT):
                continue
            k = _at(dotted("projects", name), "stages")
            env = project.get("env", ABSENT)
            seen: dict[str, str] = {}
            for stage, names in table.items():
                for member in names:
                    members = _members(member, hosts, groups)
                    if members is None:
                        self.report(f"{k}.{dotted(stage)}", f"unknown host or group {member!r}",
                                    did_you_mean(member, [*hosts, *groups]) + "known: " + ", ".join([*hosts, *groups]))
                        continue
                    for host in members:
                        carried = hosts.get(host, {}).get("projects", BAD)
                        if carried is not BAD and name not in carried:
                            self.report(f"{k}.{dotted(stage)}", f"host {host!r} does not carry {name}",
                                        f"add {name!r} to hosts.{dotted(host)}.projects, or leave it out of this stage")
                        elif seen.setdefault(host, stage) != stage:
                            self.report(k, f"host {host!r} is in two stages of {name}: {seen[host]} and {stage}",
                                        "a host runs one stage of a project (its ports and units would collide): "
                                        "name it in one stage only")
            machines: dict[tuple, tuple[str, str]] = {}
            for host, values in hosts.items():
                if values.get("projects", BAD) is BAD or name not in values["projects"] or values.get("hostname") in (BAD, None):
                    continue
                mine = seen.get(host, env)
                other = machines.setdefault((values["hostname"], values.get("port")), (host, mine))
                if other[1] != mine and env is not BAD:
                    self.report(k, f"hosts {other[0]!r} and {host!r} are one machine ({values['hostname']}) running "
                                f"{name} as {other[1]} and as {mine}",
                                "a machine runs one stage of a project (one port range, one set of units): "
                                "give each stage its own machine")

    def cross_checks(self, defaults, projects, hosts, groups) -> None:
        self.gateways(hosts)
        self.stages(projects, hosts, groups)
        self.no_name_clashes(projects)
        for name, host in hosts.items():
            self.sites(name, host, projects)
        known = all(h["projects"] is not BAD for h in hosts.values()) and bool(hosts)
        for name, project in projects.items():
            carriers = [h for h, values in hosts.items() if known and name in values["projects"]]
            if known and not carriers:
                self.report(dotted("projects", name), f"project {name!r} is on no host",
                            "add it to some host's projects, or remove the table")
            migrate = project.get("migrate_host", ABSENT)
            if known and migrate not in (BAD, ABSENT, None) and migrate not in carriers:
                self.report(_at(dotted("projects", name), "migrate_host"), f"{migrate!r} is not a host that carries {name}",
                            "use one of: " + ", ".join(carriers))
        target = ABSENT if defaults is None else defaults["default_target"]
        if target not in (BAD, ABSENT, None) and target not in hosts and target not in groups:
            all_targets = [*hosts, *groups]
            self.report("defaults.default_target", f"unknown host or group {target!r}",
                        did_you_mean(target, all_targets) + "known: " + ", ".join(all_targets))
