"""The value rules of hosts.toml: what one key's value may be, and what to write instead.

A rule takes a value that already has the key's TOML type and returns it (or what the model
holds, such as a resolved Path), or raises `Invalid` with the problem and the fix. Rules are
allowlists: names, users, hostnames and paths must match strict patterns, so no value can
smuggle shell metacharacters, whitespace, control characters or lookalike Unicode into a
remote command. That is defence in depth, not a licence to skip quoting: command builders
still pass every value through shlex.quote.

A rule sees one value; checks between keys (a deploy user that is also admin_user, a
gateway that is no host) belong to the loader in config.py. `Rule.says` is the rule's line
on the reference page.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVICES = ("web", "api", "celery", "beat")
ENVS = ("production", "staging", "dev")
ON_FAILURE = ("rollback", "stop")
CHECKS = ("errors", "strict")   # "errors": Django's errors fail a deploy; "strict": its warnings too
HOOK_PHASES = ("after-install", "before-flip", "after-success", "after-failure")  # in the order they run
LAPTOP_PHASES = ("after-success", "after-failure")   # the laptop only learns the outcome
HOOK_ON = ("host", "laptop")
HOOK_FAILURE = ("warn", "fail")   # a failed hook after the flip: a warning (exit 0), or exit 1
RESERVED_OUTPUTS = (".env", "media", ".venv")   # a release's own links and venv (and .ayna-*)
# Accounts the deploy user (the apps' User=) must never be: root, and system accounts with
# rights or data of their own.
RESERVED_USERS = ("root", "daemon", "bin", "sys", "sync", "nobody", "postgres", "redis", "sshd",
                  "www-data", "messagebus")

BATCH_RE = re.compile(r"all|[1-9][0-9]{0,3}|[1-9][0-9]?%|100%")
REL_PATH_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
APP_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
NAME_RULE = "1-32 characters: a lowercase ASCII letter, then lowercase letters, digits, '-' or '_'"
PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+@%,:=/-")
URL_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~/-")
INDEX_URL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~/:%+=,-")
DNS_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
SHELL_META = frozenset("$`;|&<>()\\\"'*?[]{}!#~^")


class Invalid(Exception):
    """One value's problem and its fix; `key` when it is not the key being read (a member of it)."""

    def __init__(self, problem: str, fix: str, key: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.fix, self.key = problem, fix, key


@dataclass(frozen=True)
class At:
    """Where a value stands: its dotted key, the key's own name and default, the file's folder."""

    key: str
    name: str
    default: Any = None
    folder: Path = Path(".")


@dataclass(frozen=True)
class Rule:
    """A check of one value (`check(value, at)` returns the value the model holds); `says` is its
    line on the reference page."""

    says: str
    check: Callable[[Any, At], Any]

    def __call__(self, value: Any, at: At) -> Any:
        return self.check(value, at)


def rule(says: str) -> Callable[[Callable[[Any, At], Any]], Rule]:
    """Make a check function a Rule that says `says` on the reference page."""
    return lambda check: Rule(says, check)


# --- describing values in messages --------------------------------------------------

def dotted(*parts: str) -> str:
    """A TOML-style dotted key; odd parts quoted so newlines cannot reach a terminal."""
    return ".".join(p if re.fullmatch(r"[A-Za-z0-9_-]+", p) else json.dumps(p) for p in parts)


def did_you_mean(value: str, known: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value, known, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def kind(value: Any) -> str:
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


def first_bad(value: str, allowed: frozenset[str]) -> str | None:
    return next((_describe(ch) for ch in value if ch not in allowed), None)


def is_hostname(value: str) -> bool:
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


# --- names, hosts, paths ----------------------------------------------------------------

def check_name(key: str, value: str, what: str) -> str:
    """A host, group, project, user or step name: it reaches unit names, sudoers and paths."""
    if not NAME_RE.fullmatch(value):
        bad = first_bad(value, frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-"))
        why = f": it contains {bad}" if bad else ""
        if not value:
            why = ": it is empty"
        elif not bad and not value[0].isalpha():
            why = ": it must start with a letter"
        elif not bad:
            why = ": it is longer than 32 characters"
        raise Invalid(f"{what} {value!r} is not a valid name{why}", f"use {NAME_RULE}", key)
    return value


def name(what: str) -> Rule:
    return Rule("a name (see above)", lambda value, at: check_name(at.key, value, what))


@rule("a DNS name or an IPv4/IPv6 address (no brackets, no zone id)")
def hostname(value: str, at: At) -> str:
    if not is_hostname(value):
        bad = first_bad(value, frozenset("abcdefghijklmnopqrstuvwxyz"
                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:"))
        why = f": it contains {bad}" if bad else ""
        raise Invalid(f"{value!r} is not a DNS name or an IP address{why}",
                      "write a DNS name such as prod.example.org, or an IPv4/IPv6 address "
                      "(no brackets, no zone id); ~/.ssh/config is not read: a bastion is a "
                      "host entry of its own, named by gateway")
    return value


def _path_chars(value: str, allow_tilde: bool) -> None:
    rest = value[1:] if allow_tilde and (value == "~" or value.startswith("~/")) else value
    bad = "it is empty" if not value else first_bad(rest, PATH_CHARS)
    if bad:
        raise Invalid(f"path {value!r} is not allowed: " + (bad if not value else f"it contains {bad}"),
                      "use letters, digits and . _ + @ % , : = / - only (no spaces, quotes "
                      "or shell metacharacters); rename the directory if needed")


@rule("absolute and normalized; letters, digits and . _ + @ , = / -")
def remote_path(value: str, at: At) -> str:
    _path_chars(value, allow_tilde=False)
    # Remote paths reach unit files: systemd reads '%' as a specifier, and PATH= splits at ':'.
    for ch, why in (("%", "systemd reads it as a specifier (%h, %n...)"),
                    (":", "it splits the units' PATH")):
        if ch in value:
            raise Invalid(f"path {value!r} is not allowed: it contains {ch!r}, and {why}",
                          "use letters, digits and . _ + @ , = / - only; rename the directory if needed")
    parts = value.split("/")
    if not value.startswith("/"):
        raise Invalid(f"{value!r} must be an absolute path on the host",
                      "write an absolute path such as /opt/ayna")
    if ".." in parts or "." in parts:
        raise Invalid(f"{value!r} must not contain '.' or '..' components",
                      "write the real absolute path, such as /opt/ayna")
    if value == "/" or "" in parts[1:]:
        fixed = "/" + "/".join(p for p in parts if p)
        raise Invalid(f"{value!r} must be a normalized directory below /",
                      f"write {fixed!r}" if fixed != "/" else "write a path such as /opt/ayna")
    return value


@rule("a path on this machine (see above); letters, digits and . _ + @ % , : = / -")
def local_path(value: str, at: At) -> Path:
    """Resolved against the hosts.toml's folder; no filesystem access."""
    _path_chars(value, allow_tilde=True)
    path = Path(value).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else at.folder / path))


@rule('a plain URL path starting with "/" (no query string)')
def url_path(value: str, at: At) -> str:
    bad = first_bad(value, URL_PATH_CHARS)
    if not value.startswith("/") or bad or "/../" in value + "/":
        raise Invalid(f"{value!r} is not a plain URL path" + (f": it contains {bad}" if bad else ""),
                      'write a path starting with "/", such as "/health/" (no query string)')
    return value


@rule('a Python version ("3.12": that one or newer) or a requires-python specifier (">=3.11,<3.14")')
def python_version(value: str, at: At) -> str:
    from ayna_fab.scan.python import minimum   # the one reader of Python declarations
    if minimum(value) is None:
        raise Invalid(f"{json.dumps(value)} is neither a Python version nor a version specifier",
                      'write python = "3.12" (3.12 or newer) or a specifier such as ">=3.11,<3.14"')
    return value


def _one_index_url(value: str, key: str) -> str:
    """An index URL goes into uv's and pip's configuration on hosts: plain http(s) or file URLs,
    and never a password (hosts.toml is not a place for secrets)."""
    fix = ('write a URL such as "https://pypi.example.org/simple"; put credentials in the deploy '
           "user's ~/.netrc on the host, which uv and pip read")
    bad = first_bad(value, INDEX_URL_CHARS | {"@"})
    if bad:
        raise Invalid(f"{json.dumps(value)} is not an index URL: it contains {bad}", fix, key)
    parts = urllib.parse.urlsplit(value)
    if "@" in parts.netloc:
        raise Invalid("must not carry credentials (user:password@)", fix, key)
    if "@" in value:
        raise Invalid(f"{value!r} is not an index URL: it contains the character '@'", fix, key)
    if parts.scheme in ("http", "https"):
        if not parts.hostname or not is_hostname(parts.hostname):
            raise Invalid(f"{value!r} names no valid host", fix, key)
    elif parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise Invalid(f"{value!r} is not a file:///absolute/path URL", fix, key)
    else:
        raise Invalid(f"{value!r} is not an http://, https:// or file:/// URL", fix, key)
    return value


INDEX_SAYS = "http(s):// or file:/// URLs, without credentials (put them in the host's ~/.netrc)"
index_url = Rule(INDEX_SAYS, lambda value, at: _one_index_url(value, at.key))
index_urls = Rule(INDEX_SAYS, lambda values, at: tuple(_one_index_url(u, at.key) for u in values))


def app_path(pattern: re.Pattern[str], want: str, dot: bool) -> Rule:
    """Where code sits in a release; these reach unit files, so allowlists only."""
    def check(value: str, at: At) -> str:
        if dot and value == ".":   # manage.py or the app at the project's root
            return value
        if not pattern.fullmatch(value) or ".." in value.split("/"):
            raise Invalid(f"{value!r} is not {want}", f'write {at.name} = "{at.default}"')
        return value
    return Rule(want, check)


# --- numbers and choices ---------------------------------------------------------------

def between(low: int, high: int, unit: str = "") -> Rule:
    def check(value: int, at: At) -> int:
        if not low <= value <= high:
            raise Invalid(f"must be {low}-{high}{unit}, got {value}", f"write {at.name} = {at.default}")
        return value
    return Rule(f"{low}-{high}{unit}", check)


@rule("at least 2: the active release and the previous good one")
def keep_releases(keep: int, at: At) -> int:
    if keep < 2:
        raise Invalid(f"must be at least 2, got {keep}",
                      "write keep_releases = 2 or more: the active release and the previous "
                      "good one are always kept for rollback")
    return keep


@rule("whole seconds, 1-600")
def connect_timeout(timeout: int | float, at: At) -> float:
    if not 0 < timeout <= 600:
        raise Invalid(f"must be over 0 and at most 600 seconds, got {timeout}", "write connect_timeout = 10")
    if timeout != int(timeout):  # Fabric truncates it to whole seconds: 0.5 would become 0, no timeout
        raise Invalid(f"must be a whole number of seconds, got {timeout}",
                      f"write connect_timeout = {int(timeout) + 1} (SSH connects in whole seconds)")
    return float(timeout)


@rule("1 or more")
def parallel(hosts: int, at: At) -> int:
    if hosts < 1:
        raise Invalid(f"must be 1 or more hosts at once, got {hosts}", f"write {at.name} = {at.default}")
    return hosts


def one_of(choices: tuple[str, ...], what: str, fix: str, suggest: bool = True) -> Rule:
    """A value from a short list; `suggest` adds "did you mean" to the fix."""
    def check(value: str, at: At) -> str:
        if value not in choices:
            raise Invalid(f"unknown {what} {value!r}", (did_you_mean(value, choices) if suggest else "") + fix)
        return value
    return Rule(" or ".join(json.dumps(c) for c in choices), check)


def each(says: str, check: Callable[[str], str]) -> Rule:
    """A rule over an array: `check` on every item in order (the first bad one is the problem);
    the model holds a tuple."""
    return Rule(says, lambda items, at: tuple(check(item) for item in items))


def _service(service: str) -> str:
    if service not in SERVICES:
        raise Invalid(f"unknown service {service!r}",
                      did_you_mean(service, SERVICES) + f"services are: {', '.join(SERVICES)}")
    return service


services = each("some of " + ", ".join(json.dumps(s) for s in SERVICES), _service)


@rule('"all", a number of hosts (1-9999) or a percentage ("25%")')
def batch(raw: Any, at: At) -> str:
    if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not BATCH_RE.fullmatch(str(raw)):
        raise Invalid(f"{raw!r} is not a batch size",
                      'write batch = "all", a number of hosts such as 2, or a percentage such as "25%"')
    return str(raw)


def _arg(arg: str) -> str:
    if not arg or any(ord(c) < 32 or c == "\x7f" for c in arg):
        raise Invalid(f"{arg!r} is empty or holds a control character",
                      "write each argument as plain text; for a shell line use [\"sh\", \"-c\", \"...\"]")
    return arg


argv = each('an argument list, no shell (write ["sh", "-c", "..."] for one); no control characters', _arg)


def _output(out: str) -> str:
    top = out.split("/", 1)[0]
    if top in RESERVED_OUTPUTS or top.startswith(".ayna-"):
        raise Invalid(f"{out!r} is a path every release uses for itself", "build into another directory")
    if not REL_PATH_RE.fullmatch(out) or ".." in out.split("/"):
        raise Invalid(f"{out!r} is not a relative path inside the project",
                      'write a path such as "src/web/static/dist"')
    return out


outputs = each("relative paths inside the project; not .env, media, .venv or .ayna-*", _output)


# --- stages and databases ------------------------------------------------------------

DATABASES = ("shared", "own")   # a target's hosts share one database, or each has its own


def _per_env(value: dict, at: At, each: Callable[[str, Any, str], Any]) -> dict:
    """A table keyed by env name: each key checked against ENVS, each value by `each(env, value, dotted key)`."""
    out = {}
    for env, item in value.items():
        if env not in ENVS:
            raise Invalid(f"unknown env {env!r}", did_you_mean(str(env), ENVS) + f"env is one of: {', '.join(ENVS)}",
                          f"{at.key}.{dotted(str(env))}")
        out[env] = each(env, item, f"{at.key}.{dotted(env)}")
    return out


@rule("a table: env = [hosts or groups running the project with it]")
def stages(value: dict, at: At) -> dict:
    def names(env: str, names: Any, key: str) -> tuple[str, ...]:
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise Invalid(f"must be a non-empty array of host or group names, got {kind(names)}",
                          f'write {env} = ["staging"]', key)
        return tuple(check_name(key, n, "host or group") for n in names)
    return _per_env(value, at, names)


@rule("a table: env = a local .env (see above)")
def env_files(value: dict, at: At) -> dict:
    def path(env: str, path: Any, key: str) -> Path:
        if not isinstance(path, str):
            raise Invalid(f"must be a path, got {kind(path)}", f'write {env} = "{env}.env"', key)
        return local_path(path, At(key, at.name, None, at.folder))
    return _per_env(value, at, path)


# --- traffic in: Caddy in front of the projects ------------------------------------------

TLS_MODES = ("auto", "internal", "off")   # ACME; Caddy's own CA; plain HTTP
# Paths Caddy answers itself, ahead of the apps: an API prefix must not shadow them.
PROXY_PATHS = ("/static", "/media")
HEADER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+")


def _domain(value: str) -> str:
    """A site name Caddy gets a certificate for: a DNS name (a leading "*." for a wildcard),
    never a scheme, port or path: Caddy listens on 80 and 443 only."""
    fix = 'write a DNS name such as "shop.example.org" (no scheme, no port, no path)'
    if "://" in value or "/" in value:
        raise Invalid(f"{value!r} is not a domain: it has a scheme or a path", fix)
    if ":" in value:
        raise Invalid(f"{value!r} names a port: sites are served on ports 80 and 443 only", fix)
    name = value[2:] if value.startswith("*.") else value
    if name != name.lower() or not is_hostname(name) or name.replace(".", "").isdigit() or "." not in name:
        bad = first_bad(name, frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-"))
        raise Invalid(f"{value!r} is not a domain" + (f": it contains {bad}" if bad else ""), fix)
    return value


domains = each('DNS names in lowercase ("*." for a wildcard); no scheme, port or path', _domain)


@rule('a URL path such as "/api": not "/", no trailing "/", not under /static or /media')
def api_prefix(value: str, at: At) -> str:
    fix = 'write api_prefix = "/api"'
    bad = first_bad(value, URL_PATH_CHARS)
    if not value.startswith("/") or bad or "/../" in value + "/" or "//" in value:
        raise Invalid(f"{value!r} is not a plain URL path" + (f": it contains {bad}" if bad else ""), fix)
    if value == "/":
        raise Invalid('"/" would send every request to the API, none to Django', fix)
    if value.endswith("/"):
        raise Invalid(f"{value!r} ends with '/'", f'write api_prefix = "{value.rstrip("/")}"')
    for path in PROXY_PATHS:
        if value == path or value.startswith(path + "/"):
            raise Invalid(f"{value!r} is under {path}/, which Caddy serves from files", fix)
    return value


@rule("an email address (ACME's account: certificate expiry notices)")
def email(value: str, at: At) -> str:
    if not EMAIL_RE.fullmatch(value):
        raise Invalid(f"{value!r} is not an email address", 'write tls_email = "ops@example.org"')
    return value


@rule("header names to values; no control characters")
def headers(value: dict, at: At) -> Any:
    for name, text in value.items():
        key = f"{at.key}.{dotted(name)}"
        if not HEADER_RE.fullmatch(name):
            raise Invalid(f"{name!r} is not a header name", 'use letters, digits and "-", such as X-Frame-Options',
                          key)
        if not isinstance(text, str):
            raise Invalid(f"must be a string, got {kind(text)}", f'write {name} = "..."', key)
        if any(ord(c) < 32 or c in '"\\{}\x7f' for c in text):
            raise Invalid(f"{json.dumps(text)} holds a control character, a quote, a backslash or a brace",
                          "write the value as plain text", key)
    return dict(value)


def _address(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise Invalid(f"{value!r} is not an IP address or network",
                      'write addresses such as "203.0.113.7" or "10.0.0.0/8"') from None
    return value


addresses = each("IP addresses or networks (CIDR)", _address)


@rule("project names to arrays of domains (as domains)")
def host_domains(value: dict, at: At) -> Any:
    out = {}
    for project, names in value.items():
        key = f"{at.key}.{dotted(project)}"
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise Invalid(f"must be an array of domains, got {kind(names)}",
                          f'write {project} = ["staging.example.org"]', key)
        try:
            out[project] = domains(names, at)
        except Invalid as exc:
            raise Invalid(exc.problem, exc.fix, key) from None
    return out
