"""The uavcrew API (FastAPI), served by uvicorn on 127.0.0.1:API_PORT."""

from __future__ import annotations

import os

import psycopg
import redis
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse

from api import settings
from api.banner import BANNER

app = FastAPI(title="uavcrew API", version=str(settings.RELEASE["release"]))


def _error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return f"error: {text}"[:200]


def _connect() -> psycopg.Connection:
    return psycopg.connect(settings.DATABASE_URL, connect_timeout=settings.DATABASE_CONNECT_TIMEOUT)


def check_database() -> str:
    try:
        with _connect() as conn:
            conn.execute("SELECT 1").fetchone()
    except Exception as exc:  # any failure means "not healthy", reported as text
        return _error(exc)
    return "ok"


def check_redis() -> str:
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return _error(exc)
    return "ok"


def build_report(service: str) -> tuple[dict, bool]:
    report = {
        "service": service,
        "release": settings.RELEASE["release"],
        "revision": settings.RELEASE.get("revision"),
        "database": check_database(),
        "redis": check_redis(),
        "pid": os.getpid(),
    }
    return report, report["database"] == "ok" and report["redis"] == "ok"


@app.get("/health")
def health() -> JSONResponse:
    """200 with the health document when PostgreSQL and Redis answer, else 503."""
    report, healthy = build_report("api")
    return JSONResponse(report, status_code=200 if healthy else 503)


@app.get("/")
def index() -> dict:
    return {"service": "api", "message": BANNER, "release": settings.RELEASE["release"]}


@app.get("/crew")
def crew() -> list[dict]:
    """Active crew members (the Django app owns the table and its migrations)."""
    try:
        with _connect() as conn:
            rows = conn.execute(
                "SELECT id, name, role, certificate_expires FROM crew_crewmember"
                " WHERE active ORDER BY name LIMIT 200"
            ).fetchall()
    except psycopg.Error as exc:
        raise HTTPException(status_code=503, detail="database unavailable") from exc
    return [
        {"id": pk, "name": name, "role": role, "certificate_expires": expires}
        for pk, name, role, expires in rows
    ]
