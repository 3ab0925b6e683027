"""Development settings (``make run``): DEBUG on, harmless defaults.

DATABASE_URL and REDIS_URL still come from the environment (or .env), because
the project only supports PostgreSQL and Redis.
"""

from __future__ import annotations

import os

from config.environment import load_env

load_env()  # a SECRET_KEY in .env wins over the default below
os.environ.setdefault(
    "SECRET_KEY", "development-only-key-never-use-in-production-0123456789abcdef"
)

from .base import *  # noqa: E402,F403

DEBUG = True
