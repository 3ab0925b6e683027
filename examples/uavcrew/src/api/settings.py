"""API configuration, read from the environment once at import.

Same variables as the Django site (see .env.example); the release's ``.env``
is loaded for runs by hand, without overriding the environment systemd gives.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# src/api/settings.py -> the release root (pyproject.toml, .env, .ayna-release.json).
# resolve() follows releases/current, so a process reports the release it loaded.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _load_env() -> None:
    env_file = PROJECT_ROOT / ".env"
    if env_file.is_file():
        from dotenv import load_dotenv

        load_dotenv(env_file, override=False)


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise RuntimeError(f"{name} is not set; see .env.example for what it should contain")
    return value


def read_release(project_root: Path = PROJECT_ROOT) -> dict:
    """The deploy tool's .ayna-release.json, or release "dev" without one."""
    info = {"release": "dev", "number": None, "revision": None, "ref": None}
    try:
        data = json.loads((project_root / ".ayna-release.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return info
    if isinstance(data, dict):
        info.update(data)
        info["release"] = str(data.get("release") or "dev")
    return info


_load_env()

PROJECT_NAME = os.environ.get("PROJECT_NAME", "uavcrew")
DATABASE_URL = _required("DATABASE_URL")
REDIS_URL = _required("REDIS_URL")
DATABASE_CONNECT_TIMEOUT = int(os.environ.get("DATABASE_CONNECT_TIMEOUT", "5") or 5)
RELEASE = read_release()
