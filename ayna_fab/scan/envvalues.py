"""What each variable a project reads stands for, so `fab init` can write a value that works.

Projects name the standard's variables their own way (`DJANGO_SECRET_KEY`, `DJANGO_ALLOWED_HOSTS`,
`CELERY_BROKER_URL`) and read them through libraries that parse them (`env.db()`,
`dj_database_url.config()`, `config(..., cast=Csv())`). A variable's role comes from its name and
from how it is read; its value then comes from the role: a random secret, the project's database
URL, its Redis URL (without a database number when the code appends one: `REDIS_URL + "/0"`
would otherwise become `.../15/0`), or the hosts health checks come from.
"""

from __future__ import annotations

import re

# The project's own secrets, which a random value serves: Django's key under its usual names (or any
# name the settings assign to SECRET_KEY), signing keys, salts, the first admin's password. Not a
# secret another party issues (S3_SECRET_KEY, an OAuth CLIENT_SECRET, a webhook's): a random one
# would not work, so those are the person's to fill in.
SECRET_RE = re.compile(r"^((DJANGO|APP|FLASK)_)?SECRET_KEY$|^JWT_SECRET(_KEY)?$|"
                       r"(^|_)(SIGNING_KEY|SALT|ADMIN_PASSWORD|SUPERUSER_PASSWORD)$")
DATABASE_RE = re.compile(r"(^|_)(DATABASE_URL|DB_URL)$")
REDIS_RE = re.compile(r"(^|_)(REDIS_URL|CACHE_URL|BROKER_URL|RESULT_BACKEND|REDIS_LOCATION)$")
ROLES = {"ALLOWED_HOSTS": "hosts", "DEBUG": "debug", "CSRF_TRUSTED_ORIGINS": "origins", "MEDIA_ROOT": "media"}
PLACEHOLDER_RE = re.compile(r"^$|change|replace|your|example|xxx|secret|password|<|\.\.\.", re.I)


def role(name: str, reads=()) -> str | None:
    """secret | database | redis | hosts | debug | origins | media, or None (the person fills it in)."""
    casts = {r.cast for r in reads}
    if SECRET_RE.search(name) or any(r.target == "SECRET_KEY" for r in reads):
        return "secret"
    if DATABASE_RE.search(name) or "db" in casts:
        return "database"
    if REDIS_RE.search(name) or "cache" in casts:
        return "redis"
    for suffix, what in ROLES.items():
        if name == suffix or name.endswith("_" + suffix):
            return what
    return None


def appended(reads) -> bool:
    return any(r.appended for r in reads)


def separator(reads) -> str:
    """How the code splits a list it reads (`.split(" ")`), "," when nothing says otherwise."""
    return next((r.split for r in reads if r.split), ",")


def truthy(reads) -> bool:
    """The code takes bool() of the string: "0" and "False" are true there, only "" is false."""
    return any(r.truthy for r in reads)


# A flag's "false" in the words of the default the code gives: a parser that accepts only "True" and
# "False" (healthchecks' envbool) refuses "0", and int() refuses "False".
FALSE_WORDS = {"true": "false", "false": "false", "yes": "no", "no": "no", "on": "off", "off": "off"}


def false_in(reads) -> str:
    """"0", unless the code's own default for the flag says false in other words ("True" -> "False")."""
    for r in reads:
        word = (r.given or "").strip()
        if word.lower() in FALSE_WORDS:
            false = FALSE_WORDS[word.lower()]
            return false.capitalize() if word[:1].isupper() else false
    return "0"


def where(reads) -> str:
    """`read at a.py:3 (os.environ[...]), b.py:9 (django-environ)`, at most three places."""
    places = [f"{r.where} ({r.how})" for r in reads[:3]]
    more = f" and {len(reads) - 3} more" if len(reads) > 3 else ""
    return "read at " + ", ".join(places) + more if places else ""


def usable(value: str) -> bool:
    """A value from .env.example or a Dockerfile that is meant to be used, not a placeholder, and
    that means the same to systemd's EnvironmentFile= as to a shell (no quotes, spaces or $)."""
    return not PLACEHOLDER_RE.search(value) and re.fullmatch(r"[^\s'\"\\$#`]+", value) is not None
