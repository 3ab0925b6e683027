"""Dependency checks behind GET /health/."""

from __future__ import annotations

import os

from django.conf import settings
from django.db import connection


def _error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return f"error: {text}"[:200]


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not healthy", reported as text
        connection.close()
        return _error(exc)
    return "ok"


def check_redis() -> str:
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
        )
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return _error(exc)
    return "ok"


def build_report(service: str) -> tuple[dict, bool]:
    """The health document and whether every dependency is reachable."""
    report = {
        "service": service,
        "release": settings.AYNA_RELEASE["release"],
        "revision": settings.AYNA_RELEASE.get("revision"),
        "database": check_database(),
        "redis": check_redis(),
        "pid": os.getpid(),
    }
    healthy = report["database"] == "ok" and report["redis"] == "ok"
    return report, healthy
