"""Reading uavcrew's configuration from the environment.

Every setting comes from environment variables. On servers systemd provides
them (``EnvironmentFile=/opt/ayna/uavcrew/shared/.env.production``); when a
command is run by hand (``manage.py migrate``, ``manage.py shell``), the
release's ``.env`` symlink to the same file is loaded with python-dotenv.
Variables already in the environment always win over the file.

This module imports nothing from Django, so it can be used (and tested)
before Django is configured.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

# src/web/config/environment.py -> the project root is three levels up from
# config/. On a server that is /opt/ayna/uavcrew/releases/vN. resolve() follows
# the `current` symlink, so a process reports the release its code came from.
WEB_ROOT = Path(__file__).resolve().parents[1]
PROJECT_ROOT = WEB_ROOT.parents[1]

RELEASE_FILE_NAME = ".ayna-release.json"


class ConfigurationError(RuntimeError):
    """A required variable is missing or malformed."""


def load_env(project_root: Path = PROJECT_ROOT) -> None:
    """Load PROJECT_ROOT/.env (if present) without overriding the environment."""
    env_file = project_root / ".env"
    if not env_file.is_file():
        return
    try:
        from dotenv import load_dotenv
    except ImportError:  # python-dotenv is a runtime dependency; be lenient anyway
        return
    load_dotenv(env_file, override=False)


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str:
    value = os.environ.get(name, "").strip()
    if value:
        return value
    if required or default is None:
        raise ConfigurationError(
            f"{name} is not set; see .env.example for what it should contain"
        )
    return default


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name}={value!r} is not a boolean (use true/false)")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} is not an integer") from None


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = os.environ.get(name, "")
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or list(default or [])


def parse_database_url(url: str) -> dict:
    """Turn ``postgresql://user:pass@host:5432/dbname`` into Django's DATABASES entry.

    Percent-encoded user names and passwords are decoded. Query parameters
    become connection options (``?sslmode=require``); ``?host=/run/postgresql``
    selects a Unix socket when the URL has no host.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ConfigurationError(
            f"DATABASE_URL must be a postgresql:// URL, got scheme {parts.scheme!r}"
        )
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ConfigurationError("DATABASE_URL names no database (postgresql://.../dbname)")
    options = dict(parse_qsl(parts.query))
    host = unquote(parts.hostname or "") or options.pop("host", "")
    try:
        port = parts.port
    except ValueError:
        raise ConfigurationError("DATABASE_URL has an invalid port") from None
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(port or ""),
        "OPTIONS": options,
    }


def read_release(project_root: Path = PROJECT_ROOT) -> dict:
    """What this release is, from the deploy tool's ``.ayna-release.json``.

    Local checkouts have no such file and report release "dev".
    """
    info = {"release": "dev", "number": None, "revision": None, "ref": None}
    try:
        data = json.loads((project_root / RELEASE_FILE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return info
    if isinstance(data, dict):
        info.update(data)
        info["release"] = str(data.get("release") or "dev")
    return info
