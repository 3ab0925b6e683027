"""The project's .env: the standard's required variables, and comparisons that name keys only.

Values are secrets: nothing here returns or prints one, except the two ports,
which the port registry makes public anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ayna_fab.errors import UsageError
from ayna_fab.hostprog import envfile as reader

REQUIRED = ("PROJECT_NAME", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DATABASE_URL", "REDIS_URL",
            "WEB_PORT", "API_PORT")


def parse(text: str) -> dict[str, str]:
    """The file's variables exactly as systemd gives them to the units (one reader: hostprog/envfile.py)."""
    try:
        return reader.parse(text)
    except ValueError as exc:
        raise UsageError(f"the env file would not load in systemd: {exc}",
                         hint="fix the file (values are never shown)") from None


@dataclass(frozen=True)
class KeyDiff:
    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def summary(self) -> str:
        parts = [f"{label}: {', '.join(keys)}" for label, keys in
                 (("added", self.added), ("removed", self.removed), ("changed", self.changed)) if keys]
        return "; ".join(parts) or "no keys differ"


def diff(old: dict[str, str], new: dict[str, str]) -> KeyDiff:
    return KeyDiff(
        added=tuple(sorted(set(new) - set(old))),
        removed=tuple(sorted(set(old) - set(new))),
        changed=tuple(sorted(k for k in set(old) & set(new) if old[k] != new[k])),
    )


def problems(values: dict[str, str], project: str, web_port: int, api_port: int) -> list[str]:
    """What is wrong with a project's .env, one line each, naming keys (never values)."""
    out = [f"{key} is missing" for key in REQUIRED if key not in values]
    out += [f"{key} is empty" for key in REQUIRED if key in values and not values[key].strip()]
    for key, want in (("WEB_PORT", web_port), ("API_PORT", api_port)):
        got = values.get(key, "").strip()
        if got and got != str(want):
            out.append(f"{key}={got} does not match the port registry ({project}: {want})")
    if values.get("PROJECT_NAME", "").strip() not in ("", project):
        out.append(f"PROJECT_NAME does not name {project}")
    out += [needs_encoding(key) for key, value in sorted(values.items()) if unencoded(value)]
    return out


# scheme://user:password@ up to the last @: what a person typed, before any parser cut it.
_USERINFO_RE = re.compile(r"[a-z][a-z0-9+.-]*://(?P<userinfo>[^/?#]*?:.*)@", re.IGNORECASE)
_UNSAFE_RE = re.compile(r"[#/?@\[\]\s]|%(?![0-9A-Fa-f]{2})")
ENCODE = ("python3 -c 'import getpass, urllib.parse; "
          "print(urllib.parse.quote(getpass.getpass(\"password: \"), safe=\"\"))'")


def unencoded(value: str) -> bool:
    """Whether a URL's user or password holds a character a URL parser reads as the end of it
    (# / ? @ [ ] a blank, a % that starts no escape, a : in the user name or a second one): the
    app would read another host, port or password, and quote a piece of the secret in its error."""
    m = _USERINFO_RE.match(value.strip())
    if not m:
        return False
    user, _, password = m["userinfo"].partition(":")
    if re.fullmatch(r"[0-9]+(/.*)?", password, re.DOTALL) and not user.count("@"):
        return False   # host:port/path with an @ further on (http://localhost:8000/u/@me): no user at all
    return bool(_UNSAFE_RE.search(user) or _UNSAFE_RE.search(password) or ":" in password)


def needs_encoding(key: str) -> str:
    """The refusal of an unencoded URL: the key and how to encode, never the value (its encoded
    form is the secret in all but name)."""
    return (f"{key}'s user or password must be percent-encoded (# / ? @ : % [ ] and blanks): "
            f"encode it with {ENCODE} and put the result in the URL")
