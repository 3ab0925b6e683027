"""Every key of hosts.toml, once: where it may appear, its type, default, rule and meaning.

`KEYS` is the one table. From it come the keys each section allows (unknown ones get a "did
you mean"), the fields and defaults of config.py's dataclasses (`model`), the reference page
docs/hosts-toml.md (`markdown`; `python -m ayna_fab.config.schema --markdown`) and the lines of
`fab init`'s entry (`entry`). docs/ARCHITECTURE.md, "Where to add things", says how to add a key.

Why a table over stdlib dataclasses rather than msgspec, pydantic or cattrs: each would add a
dependency (pydantic a compiled core) to do the part that is easy here, checking TOML's few
types, while the part that matters, the allowlists, every message's wording and fix, and
checks between keys, would still be ours, written as hooks in its idiom. msgspec stops at the
first error; pydantic and cattrs collect errors but in messages of their own, which would have
to be mapped back to today's ones key by key. The table stays plain data that the loader,
the page and `fab init` read alike.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from ayna_fab.config import rules as r
from ayna_fab.config.rules import At, Invalid, Rule, kind

REQUIRED = object()   # a key with no default: the file must set it
DERIVED = object()    # a default the loader works out from other keys (`shown` says how)


@dataclass(frozen=True)
class Factory:
    """A default made when used (one that depends on $HOME, or is mutable)."""

    make: Callable[[], Any]
    shown: str


@dataclass(frozen=True)
class Kind:
    """A TOML type: what a value must be before its rule sees it."""

    name: str                       # on the page
    want: str                       # in "must be WANT, got ..."
    types: tuple[type, ...]
    model: str                      # the dataclass field's type
    empty: bool = True              # arrays: may be []
    section: str | None = None      # tables: the section their keys belong to

    def check(self, value: Any, at: At, example: str) -> Any:
        if self.types == (object,):   # the rule checks the type itself
            return value
        if self.section is not None and self.types == (dict,):
            if not isinstance(value, dict):
                raise Invalid(f"must be a table, got {kind(value)}", f"write it as a [{at.key}] table")
            return value
        if (isinstance(value, bool) and bool not in self.types) or not isinstance(value, self.types):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise Invalid(f"must be {self.want}, got {kind(value)} ({shown})", f"write {at.name} = {example}")
        if self.types == (list,):
            self.items(value, at, example)
        return value

    def items(self, items: list[Any], at: At, example: str) -> None:
        if self.section is not None:   # an array of tables
            for i, item in enumerate(items):
                if not isinstance(item, dict):
                    raise Invalid(f"must be a table, got {kind(item)}", f"write each one as a [[{at.key}]] table",
                                  f"{at.key}[{i}]")
            return
        if not items and not self.empty:
            raise Invalid("must not be empty", f"write {at.name} = {example}")
        for item in items:
            if not isinstance(item, str):
                raise Invalid(f"must hold only strings, got {kind(item)} ({item!r})", f"write {at.name} = {example}")
        dupes = sorted({i for i in items if items.count(i) > 1})
        if dupes:
            raise Invalid(f"lists {dupes[0]!r} twice", "list each name once")


STRING = Kind("string", "a string", (str,), "str")
INTEGER = Kind("integer", "an integer", (int,), "int")
SECONDS = Kind("number", "a number of seconds", (int, float), "float")
BOOLEAN = Kind("boolean", "true or false", (bool,), "bool")
STRINGS = Kind("array of strings", "an array of strings", (list,), "tuple[str, ...]", empty=False)
STRINGS_OR_NONE = Kind("array of strings", "an array of strings", (list,), "tuple[str, ...]")
PATH = Kind("string", "a string", (str,), "Path")
ANY = Kind("string or integer", "", (object,), "str")
STAGES = Kind("table", "a table", (dict,), "Mapping[str, tuple[str, ...]]")
ENV_FILES = Kind("table", "a table", (dict,), "Mapping[str, Path]")


MAPPING = Kind("table", "a table", (dict,), "Mapping[str, str]")
DOMAINS_BY_PROJECT = Kind("table", "a table", (dict,), "Mapping[str, tuple[str, ...]]")


def tables(section: str, model: str) -> Kind:
    return Kind("array of tables", "an array of tables", (list,), f"tuple[{model}, ...]", section=section)


def table(section: str) -> Kind:
    return Kind("table", "a table", (dict,), "Mapping[str, str]", section=section)


@dataclass(frozen=True)
class Section:
    """Where keys may appear. `unset`: what the model holds for a key this section shares with a
    wider one ([defaults], a host) when the file does not set it here: "default" (the loader fills
    in the wider one's value, and the dataclass has the key's default) or "none" (None: the wider
    one's value applies where the setting is used, so the most specific place that sets it wins)."""

    name: str
    header: str
    doc: str
    unset: str = "default"


SECTIONS = {s.name: s for s in (
    Section("defaults", "[defaults]", "Values every host inherits unless it sets its own."),
    Section("project", "[projects.NAME]", "One deployable project: where its code comes from and what it runs.",
            unset="none"),
    Section("build", "[[projects.NAME.build]]", "Any number, run in order on the laptop in a clean export of the "
            "deployed commit; `outputs` go into the release although git does not hold them."),
    Section("hook", "[[projects.NAME.hooks]]", "Any number: a command at a named phase of deploy and rollback, on "
            "every host (in the release, as the deploy user) or once on the laptop; each phase's hooks run in "
            "the order written."),
    Section("health", "[projects.NAME.health]", "The health endpoint of each HTTP service the project runs "
            "(written inline: `health = { web = \"/health/\" }`)."),
    Section("host", "[hosts.NAME]", "A server. Keys it shares with [defaults] override them for this host."),
)}

D, H, P = ("defaults",), ("host",), ("project",)
DH = ("defaults", "host")
DHP = ("defaults", "host", "project")
DP = ("defaults", "project")


@dataclass(frozen=True)
class Key:
    """One row: a key, where it may appear, its type, default, rule and one line saying what it is."""

    name: str
    where: tuple[str, ...]
    kind: Kind
    default: Any
    doc: str
    example: str                    # TOML, as in fixes ("write NAME = EXAMPLE") and the page's example
    rule: Rule | None = None
    shown: str | None = None        # the page's default, when it is not the value itself

    def at(self, key: str, folder: Path = Path(".")) -> At:
        return At(key, self.name, self.default, folder)

    def read(self, value: Any, at: At, example: str) -> Any:
        """The model's value of a value the file gives; Invalid if the file's value is wrong."""
        value = self.kind.check(value, at, example)
        return self.rule(value, at) if self.rule else value


KEYS: tuple[Key, ...] = (
    # --- hosts, and what [defaults] gives them
    Key("hostname", H, STRING, REQUIRED, "a DNS name or an IP address; ~/.ssh/config is not read",
        '"prod.example.org"', r.hostname),
    Key("port", H, INTEGER, 22, "the SSH port", "22", r.between(1, 65535)),
    Key("user", DH, STRING, "adonis", "SSH login for deploys, and the units' User=; never root, admin_user "
        "or a system account", '"adonis"', r.name("user")),
    Key("admin_user", DH, STRING, "root", "SSH login for setup (creates users, units, sudoers)", '"root"',
        r.name("user")),
    Key("identity_file", DH, PATH, None, "the deploy key (as user); unset: ssh-agent and the default keys",
        '"~/.ssh/id_ed25519"', r.local_path),
    Key("known_hosts", DH, PATH, Factory(lambda: Path.home() / ".ssh" / "known_hosts", "~/.ssh/known_hosts"),
        "host keys, checked strictly", '"~/.ssh/known_hosts"', r.local_path),
    Key("projects", H, STRINGS_OR_NONE, (), "the projects this host carries; may be empty for a server not "
        "yet in use", '["uavcrew"]'),
    Key("gateway", H, STRING, None, "a host entry to reach this host through (a bastion)", '"bastion"',
        r.name("gateway")),
    Key("domains", H, DOMAINS_BY_PROJECT, Factory(dict, "none"), "a project's domains on this host, "
        "replacing its own (staging apart from production)", '{ uavcrew = ["staging.uavcrew.example.org"] }',
        r.host_domains),
    Key("admin_identity_file", DH, PATH, None, "the admin key (as admin_user), setup only; unset: identity_file",
        '"~/.ssh/id_ed25519_admin"', r.local_path),
    Key("base_dir", D, STRING, "/opt/ayna", "on the hosts; each project lives in base_dir/NAME", '"/opt/ayna"',
        r.remote_path),
    Key("keep_releases", D, INTEGER, 5, "good releases kept on each host", "5", r.keep_releases),
    Key("connect_timeout", DH, SECONDS, 10.0, "seconds to wait for an SSH connection (a far host may need more)", "10",
        r.connect_timeout),
    Key("parallel", D, INTEGER, 8, "hosts worked on at once (connections, a fleet's steps, status and history "
        "queries; see docs/fleet-scale.md); --parallel overrides it", "8", r.parallel),
    Key("default_target", D, STRING, None, "the host or group used when no -H is given", '"production"',
        r.name("default_target")),
    # --- projects
    Key("source", P, PATH, REQUIRED, "the local git checkout deploys are built from", '"../{name}"', r.local_path),
    Key("port_base", P, INTEGER, DERIVED, "the first of the project's ten ports (web +0, api +1): a free range of the registry "
        "(see Port registry)",
        "8130", shown="the standard's range; required for other projects"),
    Key("services", P, STRINGS, r.SERVICES, "what it runs", '["web", "api", "celery", "beat"]', r.services),
    Key("env", P, STRING, REQUIRED, "links shared/.env.ENV into each release", '"production"',
        r.one_of(r.ENVS, "env", f"env is one of: {', '.join(r.ENVS)}")),
    Key("env_file", P, PATH, None, "the local .env that setup uploads (keep it out of git)", '".env.production"',
        r.local_path),
    Key("stages", P, STAGES, Factory(dict, "none: every host runs `env`"), "other envs on some hosts: "
        "`env = [hosts or groups]`; one project name, port range and set of units on each host",
        '{ staging = ["staging"] }', r.stages),
    Key("env_files", P, ENV_FILES, Factory(dict, "none: env_file"), "the local .env that setup uploads "
        "for a stage's hosts, by env", '{ staging = "{name}.staging.env" }', r.env_files),
    Key("env_command", P, STRINGS, None, "run on the laptop by setup, env.push and env.diff; its output is "
        "the env file (instead of env_file)", '["pass", "show", "shop/env"]', r.argv),
    Key("health", P, table("health"), Factory(dict, "web and api below"), "health endpoints, by service",
        '{ web = "/health/", api = "/health" }'),
    Key("migrate_host", P, STRING, None, "the host that migrates for a fleet; unset: the target's first",
        '"prod"', r.name("migrate_host")),
    Key("database", DHP, STRING, "shared", 'a fleet\'s hosts share one database (migrated once, on migrate_host), '
        'or "own": each host backs up and migrates its own', '"own"',
        r.one_of(r.DATABASES, "database setting", 'write database = "shared" (one database, migrated once) or '
                 '"own" (each host migrates its own)', suggest=False)),
    Key("create_database", P, BOOLEAN, False, "setup creates the PostgreSQL role and database", "false"),
    Key("django_dir", P, STRING, "src/web", "manage.py and the settings package; gunicorn --chdir, "
        "celery --workdir", '"src/web"',
        r.app_path(r.REL_PATH_RE, 'a relative path such as src/web, or "." (the project\'s root)', dot=True)),
    Key("wsgi_app", P, STRING, "config.wsgi:application", "gunicorn's application", '"config.wsgi:application"',
        r.app_path(r.APP_RE, "module:attribute, such as config.wsgi:application", dot=False)),
    Key("asgi_dir", P, STRING, "src", "uvicorn --app-dir", '"src"',
        r.app_path(r.REL_PATH_RE, 'a relative path such as src, or "." (the project\'s root)', dot=True)),
    Key("asgi_app", P, STRING, "api.main:app", "uvicorn's application", '"api.main:app"',
        r.app_path(r.APP_RE, "module:attribute, such as api.main:app", dot=False)),
    Key("celery_app", P, STRING, "config", "celery -A, imported from django_dir", '"config"',
        r.app_path(r.MODULE_RE, "a module such as config", dot=False)),
    Key("batch", P, ANY, "all", "fleets: flip all hosts at once, N hosts at a time, or a percentage", '"all"',
        r.batch),
    Key("on_failure", P, STRING, "rollback", "fleets: a failed health gate rolls every flipped host back, "
        'or "stop" keeps them', '"rollback"',
        r.one_of(r.ON_FAILURE, "policy", 'write on_failure = "rollback" (flipped hosts go back) or "stop" '
                 "(they stay)", suggest=False)),
    Key("python", P, STRING, None, "the Python the project needs on its hosts, replacing what its files declare "
        "(requires-python, .python-version, runtime.txt, the Dockerfile's FROM); a plan refuses a host whose "
        "python3 does not satisfy it", '"3.12"', r.python_version, shown="unset: what the project declares"),
    Key("keep_backups", DP, INTEGER, 10, "database backups kept in shared/backups", "10", r.between(1, 1000)),
    Key("backup_before_migrate", P, BOOLEAN, True, "deploys and `fab migrate` dump the database first", "true"),
    Key("checks", P, STRING, "errors", "Django's check: errors fail a deploy and warnings are shown, or "
        '"strict": warnings fail it too', '"errors"',
        r.one_of(r.CHECKS, "checks level", 'write checks = "errors" (Django\'s errors fail a deploy, its '
                 'warnings are shown) or "strict" (warnings fail it too)')),
    Key("allow_debug", P, BOOLEAN, False, "deploy settings with DEBUG = True (a deploy's check refuses them "
        "otherwise)", "false"),
    Key("django", P, BOOLEAN, True, "runs Django: check, migrate, collectstatic, backups", "true",
        shown="true when services has web"),
    Key("index_url", DHP, STRING, None, "uv's default index (PEP 503 simple API); unset: the host's uv "
        "configuration", '"https://pypi.example.org/simple"', r.index_url),
    Key("extra_index_urls", DHP, STRINGS_OR_NONE, None, "indexes uv tries before index_url",
        '["https://pypi.example.org/simple"]', r.index_urls),
    Key("system_certs", DHP, BOOLEAN, None, "uv trusts the host's certificate store (a company CA)", "true"),
    Key("build", P, tables("build", "BuildStep"), (), "build steps", "[[projects.{name}.build]] tables"),
    Key("hooks", P, tables("hook", "Hook"), (), "hooks", "[[projects.{name}.hooks]] tables"),
    Key("hook_failure", P, STRING, "warn", 'a failed hook after the flip: a warning (exit 0), or "fail" '
        "(exit 1); never a rollback", '"warn"',
        r.one_of(r.HOOK_FAILURE, "setting", 'write hook_failure = "warn" (a failed hook after the flip is a '
                 'warning, exit 0) or "fail" (exit 1; what is live stays live)', suggest=False)),
    # --- traffic in: Caddy in front of the projects (docs/proxy.md)
    Key("domains", P, STRINGS_OR_NONE, (), "the sites Caddy serves the project on, on every host that "
        "carries it (a host's domains replace them there); none: no proxy", '["shop.example.org"]', r.domains),
    Key("api_prefix", P, STRING, None, "the API on the project's domains under this path (stripped before "
        "the api sees it)", '"/api"', r.api_prefix),
    Key("api_domains", P, STRINGS_OR_NONE, (), "the API on domains of its own", '["api.shop.example.org"]',
        r.domains),
    Key("tls", DHP, STRING, "auto", '"auto": certificates from Let\'s Encrypt (ports 80 and 443 open, DNS '
        'pointing at the host); "internal": Caddy\'s own CA (staging, sandboxes); "off": plain HTTP', '"auto"',
        r.one_of(r.TLS_MODES, "tls mode", 'write tls = "auto", "internal" or "off"')),
    Key("tls_email", DHP, STRING, None, 'ACME account email; required with tls = "auto"', '"ops@example.org"',
        r.email),
    Key("headers", P, MAPPING, Factory(dict, "none"), "extra response headers on every answer of the "
        "project's sites", '{ X-Frame-Options = "DENY" }', r.headers),
    Key("static_dir", P, STRING, "staticfiles", "STATIC_ROOT inside a release: Caddy serves /static/ from "
        "releases/current/STATIC_DIR", '"staticfiles"',
        r.app_path(r.REL_PATH_RE, "a relative path such as staticfiles", dot=False)),
    Key("maintenance_allow", P, STRINGS_OR_NONE, (), "addresses that still reach the app during "
        "maintenance", '["203.0.113.7", "10.0.0.0/8"]', r.addresses),
    # --- [projects.NAME.health]
    Key("web", ("health",), STRING, "/health/", "polled after web restarts (never through a proxy)",
        '"/health"', r.url_path),
    Key("api", ("health",), STRING, "/health", "polled after api restarts", '"/health"', r.url_path),
    # --- [[projects.NAME.build]]
    Key("name", ("build",), STRING, REQUIRED, "unique among the project's build steps", '"assets"',
        r.name("build step")),
    Key("command", ("build",), STRINGS, REQUIRED, "run in an export of the commit",
        '["sh", "-c", "npm ci && npm run build"]', r.argv),
    Key("outputs", ("build",), STRINGS, REQUIRED, "files or directories it makes", '["static/dist"]', r.outputs),
    Key("timeout", ("build",), INTEGER, 600, "seconds; then it is killed and fails", "600",
        r.between(1, 7200, " seconds")),
    # --- [[projects.NAME.hooks]]
    Key("name", ("hook",), STRING, REQUIRED, "unique among the project's hooks", '"notify"', r.name("hook")),
    Key("phase", ("hook",), STRING, REQUIRED, "when it runs", '"after-success"',
        r.one_of(r.HOOK_PHASES, "phase", f"phases, in order: {', '.join(r.HOOK_PHASES)}")),
    Key("command", ("hook",), STRINGS, REQUIRED, "run in the release with the units' environment",
        '["sh", "-c", "npm ci && npm run build"]', r.argv),
    Key("on", ("hook",), STRING, "host", '"host": every host, in the release; "laptop": this machine, '
        "after-success or after-failure only", '"host"',
        r.one_of(r.HOOK_ON, "place", 'write on = "host" (every host) or "laptop"', suggest=False)),
    Key("once", ("hook",), BOOLEAN, False, "host hooks: on the migrate host only", "true"),
    Key("timeout", ("hook",), INTEGER, 300, "seconds; then its process group is stopped and it fails", "300",
        r.between(1, 7200, " seconds")),
)

TOP_KEYS = ("defaults", "projects", "hosts", "groups")


def rows(section: str, keys: tuple[Key, ...] = KEYS) -> tuple[Key, ...]:
    return tuple(k for k in keys if section in k.where)


def allowed(section: str, keys: tuple[Key, ...] = KEYS) -> tuple[str, ...]:
    """The keys a section may hold, in the table's order."""
    return tuple(k.name for k in rows(section, keys))


def model_default(key: Key, section: str) -> Any:
    """The dataclass default of `key` in `section`'s model: MISSING when the file or the loader
    must give it."""
    if key.default in (REQUIRED, DERIVED):
        return MISSING
    wider = key.where[:key.where.index(section)]
    if wider and SECTIONS[section].unset == "none":
        return None
    return key.default


def model(section: str, keys: tuple[Key, ...] = KEYS) -> Callable[[type], type]:
    """A class decorator: a frozen dataclass with the class's own fields, then one per key of
    `section`, typed and defaulted from the table (fields without a default first)."""
    def make(cls: type) -> type:
        notes = dict(cls.__dict__.get("__annotations__", {}))
        later: dict[str, str] = {}
        for key in rows(section, keys):
            default = model_default(key, section)
            hint = key.kind.model + (" | None" if default is None else "")
            if default is MISSING:
                notes[key.name] = hint
                continue
            later[key.name] = hint
            if isinstance(default, Factory):   # a mapping is never hashed: frozen, but a dict
                default = field(default_factory=default.make, hash=key.kind.types != (dict,))
            setattr(cls, key.name, default)
        cls.__annotations__ = {**notes, **later}
        return dataclass(frozen=True)(cls)
    return make


def defaults_of(section: str, keys: tuple[Key, ...] = KEYS) -> Mapping[str, Any]:
    """Each key's default in `section`, where it is a plain value (not required, derived or made)."""
    out = {}
    for key in rows(section, keys):
        value = model_default(key, section)
        if value is not MISSING and not isinstance(value, Factory):
            out[key.name] = value
    return out


# --- TOML text: the page and fab init's entry ---------------------------------------

def toml_value(value: Any) -> str:
    """A value as TOML writes it: strings and arrays as JSON does, tables inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return json.dumps(value) if isinstance(value, str) else str(value)


def entry(header: str, section: str, values: Mapping[str, Any], notes: Mapping[str, str] | None = None,
          keys: tuple[Key, ...] = KEYS) -> str:
    """A table of hosts.toml: `header`, then each given key of `section` in the table's order,
    with its note (else nothing) as a comment."""
    notes = notes or {}
    unknown = set(values) - set(allowed(section, keys))
    if unknown:
        raise ValueError(f"not keys of {section}: {', '.join(sorted(unknown))}")
    lines = [header]
    for key in rows(section, keys):
        if key.name in values:
            line = f"{key.name} = {toml_value(values[key.name])}"
            lines.append(f"{line}   # {notes[key.name]}" if key.name in notes else line)
    return "\n".join(lines) + "\n"


def _shown(key: Key, section: str) -> str:
    wider = key.where[:key.where.index(section)]
    if wider:
        return "from " + " / ".join(SECTIONS[w].header for w in reversed(wider))
    if key.shown:
        return key.shown
    if key.default is REQUIRED:
        return "required"
    default = model_default(key, section)
    if isinstance(default, Factory):
        return default.shown
    return "none" if default is None else f"`{toml_value(default)}`"


def _says(key: Key) -> str:
    return key.rule.says if key.rule else ""


EXAMPLE_TAIL = """\
[hosts.staging]
hostname = "staging.example.org"
projects = ["uavcrew"]

[hosts.bastion]
hostname = "bastion.example.org"

[groups]
production = ["prod"]   # hosts or other groups
"""

INTRO = """\
# hosts.toml

<!-- Generated from ayna_fab/config/schema.py by `python -m ayna_fab.config.schema --markdown`;
edit the table there, not this page. -->

ayna-fab reads the file named by `AYNA_FAB_HOSTS`, else `./hosts.toml`, else
`./deploy/hosts.toml` (in the directory it runs from). The whole file is
validated before anything remote runs: unknown keys (with a "did you mean"), wrong types,
names or paths with shell metacharacters, whitespace or non-ASCII characters, port ranges that
overlap or leave the registry, unknown hosts, groups and projects; a deploy `user` that is root,
`admin_user` or a system account (daemon, bin, sys, sync, nobody, postgres, redis, sshd,
www-data, messagebus: the units run as it); a `base_dir` with `%` (a systemd specifier) or `:`
(it splits the units' PATH); a `connect_timeout` that is not a whole number of seconds; two
projects whose sudoers alias or units would be the same (`my-app` and `my_app`). Every error in
the file is reported in one run, each with the file, the dotted key and the fix, and the
command exits 2.

Relative local paths (`source`, `env_file`, `identity_file`, `admin_identity_file`,
`known_hosts`) are relative to the hosts.toml's folder. Names of hosts, groups and projects are
1-32 characters of lowercase letters, digits, `-` and `_`, starting with a letter, and a name
means one thing: a host, a group or a project. A key that may appear in several places is taken
from the most specific one that sets it: a project over its host over `[defaults]`.
"""

OUTRO = """\
## [groups]

`NAME = ["host", "group", ...]`: a group's members, hosts or other groups (no cycles). `-H TARGET`
takes a host, a group, or a comma-separated list of them, resolved in hosts.toml; an unknown name
is an error listing the known ones (never a DNS lookup).

## Port registry

The standard's table is built in: ayna-comply 8100-8109, ayna-fly 8110-8119, aynasite
8120-8129, uavcrew 8130-8139, skybookus 8140-8149. Within a range: web +0, api +1, docs +2,
websocket +3, admin +4, +5..9 reserved. A project outside the table needs its own `port_base`,
a range of ten that overlaps no other; a standard project's `port_base`, if given, must be the
standard's.

## Package index

By default uv on a host uses whatever its admin configured (`/etc/uv/uv.toml`, PyPI).
`index_url` (uv's default index, a PEP 503 simple API or `file:///` directory),
`extra_index_urls` (tried first, in order) and `system_certs` (trust the host's certificate
store, where a company puts the CA of its TLS-inspecting proxy; uv's own roots do not know it
and fail with `invalid peer certificate: UnknownIssuer`) may be set in `[defaults]`, on a host
or on a project. Setup writes them as uv's own configuration, `/opt/ayna/{project}/uv.toml`,
and deploys run uv with `UV_CONFIG_FILE` pointing at it, which replaces every other uv
configuration on the host: what hosts.toml says is exactly what deploys use (by hand:
`UV_CONFIG_FILE=/opt/ayna/P/uv.toml uv ...` as the deploy user). Setup also installs uv itself
with pip from the same index (`--index-url`, `--extra-index-url`, `--cert
/etc/ssl/certs/ca-certificates.crt`). If hosts.toml's settings are not what setup last wrote, a
deploy stops at plan and asks for `fab -H HOST setup`. Index URLs carry no credentials
(hosts.toml is no place for secrets): put them in the deploy user's `~/.netrc` on the host,
which uv and pip read.
"""

PAGE_ORDER = ("defaults", "project", "health", "build", "hook", "host")
EXAMPLE_HEADERS = {"defaults": "[defaults]", "project": "[projects.uavcrew]",
                   "build": "[[projects.uavcrew.build]]", "hook": "[[projects.uavcrew.hooks]]",
                   "host": "[hosts.prod]"}


def example(keys: tuple[Key, ...] = KEYS) -> str:
    """A hosts.toml that sets every key (it loads: a unit test says so)."""
    parts = []
    for section, header in EXAMPLE_HEADERS.items():
        lines = [header]
        for key in rows(section, keys):
            if key.kind.section is None or key.kind.types == (dict,):
                lines.append(f"{key.name} = {key.example.replace('{name}', 'uavcrew')}")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts) + "\n" + EXAMPLE_TAIL


def markdown(keys: tuple[Key, ...] = KEYS) -> str:
    """docs/hosts-toml.md: the prose, an example that sets every key, then every section's keys."""
    out = [INTRO, "## Example\n", "```toml\n" + example(keys) + "```\n"]
    for name in PAGE_ORDER:
        section = SECTIONS[name]
        out.append(f"## {section.header}\n\n{section.doc}\n\n| key | type | default | rule | what |\n|---|---|---|---|---|")
        for key in rows(name, keys):
            out.append(f"| `{key.name}` | {key.kind.name} | {_shown(key, name)} | {_says(key)} | {key.doc} |")
        out.append("")
    out.append(OUTRO)
    return "\n".join(out)


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m ayna_fab.config.schema --markdown > docs/hosts-toml.md")
    sys.stdout.write(markdown())
