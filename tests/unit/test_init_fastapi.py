"""fab init on a FastAPI project as the popular templates shape it: settings in a pydantic-settings
class, servers from fastapi[standard], the OpenAPI document under a prefix, a uv workspace."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ayna_fab.scan import envreads, project as projectinit

SETTINGS = textwrap.dedent('''
    from typing import ClassVar
    from pydantic import Field, PostgresDsn
    from pydantic_settings import BaseSettings, SettingsConfigDict

    class Settings(BaseSettings):
        model_config = SettingsConfigDict(env_file="../.env", env_ignore_empty=True)
        API_V1_STR: str = "/api/v1"
        SECRET_KEY: str
        DEBUG: bool = False
        WORKERS: int | None = None
        DATABASE_URL: PostgresDsn
        FIRST_SUPERUSER: str = Field(...)
        TOKEN_HOURS: int = Field(default=8)
        TAGS: list[str] = Field(default_factory=list)
        SENTRY: str | None = Field(None, validation_alias="SENTRY_DSN")
        VERSION: ClassVar[str] = "1"
        _cache: dict = {}

    class Mailer(Settings):
        smtp_host: str
        model_config = SettingsConfigDict(env_prefix="MAIL_")

    class Exact(BaseSettings):
        class Config:
            env_prefix = "Svc_"
            case_sensitive = True
        token: str
    ''')

MAIN = textwrap.dedent('''
    from fastapi import FastAPI
    from app.core.config import settings
    from app.api.main import api_router
    app = FastAPI(title="x", openapi_url=f"{settings.API_V1_STR}/openapi.json")
    app.include_router(api_router, prefix=settings.API_V1_STR)
    ''')

ROUTES = textwrap.dedent('''
    from fastapi import APIRouter
    router = APIRouter(prefix="/utils")

    @router.get("/health-check/")
    async def health_check() -> bool:
        return True
    ''')

PYPROJECT = textwrap.dedent('''
    [project]
    name = "app"
    version = "0.1.0"
    requires-python = ">=3.11"
    dependencies = ["fastapi[standard]>=0.110", "pydantic-settings", "psycopg[binary]"]
    ''')


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def backend(tmp_path: Path, **extra: str) -> Path:
    return tree(tmp_path / "repo" / "backend", {
        "pyproject.toml": PYPROJECT, "uv.lock": "version = 1\n", "app/__init__.py": "", "app/main.py": MAIN,
        "app/core/__init__.py": "", "app/core/config.py": SETTINGS, "app/api/__init__.py": "",
        "app/api/main.py": "from fastapi import APIRouter\napi_router = APIRouter()\n",
        "app/api/routes/__init__.py": "", "app/api/routes/utils.py": ROUTES, **extra})


def test_a_pydantic_settings_class_reads_each_field_required_unless_it_has_a_default():
    reads = {r.name: r for r in envreads.reads(SETTINGS, "config.py")}
    assert {k: (r.default, r.cast) for k, r in reads.items()} == {
        "API_V1_STR": (True, "str"), "SECRET_KEY": (False, "str"), "DEBUG": (True, "bool"),
        "WORKERS": (True, "int"), "DATABASE_URL": (False, "db"), "FIRST_SUPERUSER": (False, "str"),
        "TOKEN_HOURS": (True, "int"), "TAGS": (True, "str"), "SENTRY_DSN": (True, "str"),
        # a derived class: its own fields, with its own prefix
        "MAIL_SMTP_HOST": (False, "str"),
        # case_sensitive: the name as written, prefix and all
        "Svc_token": (False, "str"),
    }
    assert reads["SECRET_KEY"].how == "pydantic-settings" and reads["SECRET_KEY"].where == "config.py:9"


def test_init_writes_the_settings_fields_and_blocks_on_the_required_ones(tmp_path):
    found = projectinit.inspect(backend(tmp_path))
    assert found.asgi_app == "app.main:app" and found.services == ["api"]
    assert projectinit.unfilled(found) == ["FIRST_SUPERUSER", "MAIL_SMTP_HOST", "Svc_token"]
    assert "DATABASE_URL" in found.env_keys and "SECRET_KEY" in found.env_keys and "DEBUG" in found.env_optional


def test_fastapi_standard_brings_uvicorn(tmp_path):
    found = projectinit.inspect(backend(tmp_path))
    assert not [g for g in projectinit.deploy_gaps(found) if "uvicorn is not a dependency" in g.what]
    found = projectinit.inspect(backend(tmp_path / "bare", **{
        "pyproject.toml": PYPROJECT.replace("fastapi[standard]", "fastapi")}))
    assert [g.what for g in projectinit.deploy_gaps(found) if "uvicorn" in g.what] == [
        "uvicorn is not a dependency, but the api unit runs uvicorn"]


def test_an_openapi_document_under_a_prefix_is_no_health_fallback(tmp_path):
    found = projectinit.inspect(backend(tmp_path))
    assert found.openapi_moved == "f'{settings.API_V1_STR}/openapi.json'"
    gap = next(g for g in projectinit.deploy_gaps(found) if "no health route" in g.what)
    assert gap.blocking and "answers 404" in gap.what
    assert "app/api/routes/utils.py:5 /health-check/" in gap.fix
    # the default place: a note, as before
    found = projectinit.inspect(backend(tmp_path / "plain", **{"app/main.py": MAIN.replace(
        ', openapi_url=f"{settings.API_V1_STR}/openapi.json"', "")}))
    gap = next(g for g in projectinit.deploy_gaps(found) if "no health route" in g.what)
    assert found.openapi_moved is None and not gap.blocking


def test_a_uv_workspace_member_is_told_its_lock_is_outside_what_a_deploy_sends(tmp_path):
    root = tmp_path / "repo"
    tree(root, {"pyproject.toml": '[tool.uv.workspace]\nmembers = ["backend"]\n', "uv.lock": "version = 1\n"})
    path = backend(tmp_path)
    (path / "uv.lock").unlink()
    found = projectinit.inspect(path)
    assert projectinit.uv_workspace(path) == root.resolve()
    gap = next(g for g in projectinit.deploy_gaps(found) if "uv workspace" in g.what)
    assert gap.blocking and 'take "backend" out of [tool.uv.workspace] members' in gap.fix
    assert not [g for g in projectinit.deploy_gaps(found) if g.what.startswith("uv.lock is missing")]
    # a folder the workspace excludes, or names not, is a project of its own
    (root / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["libs/*"]\n')
    assert projectinit.uv_workspace(path) is None


def test_alembic_migrations_become_a_once_per_deploy_hook_in_a_hosts_toml_that_loads(tmp_path, monkeypatch):
    from invoke import Context

    from ayna_fab.cli.tasks.init import init
    from ayna_fab.config import model as config

    path = backend(tmp_path, **{"alembic.ini": "[alembic]\nscript_location = app/alembic\n"})
    monkeypatch.chdir(tmp_path)
    hosts_file = tmp_path / "hosts.toml"
    monkeypatch.setenv(config.ENV_VAR, str(hosts_file))
    init(Context(), str(path), write=True, host="h1", hostname="127.0.0.2")
    project = config.load(hosts_file).projects["app"]
    assert [(h.name, h.phase, h.once, h.command) for h in project.hooks] == [
        ("alembic", "after-install", True, ("alembic", "upgrade", "head"))]
    assert "found alembic.ini" in hosts_file.read_text()
    # no alembic.ini: no hook
    assert projectinit.inspect(backend(tmp_path / "other")).alembic is None
