"""Small, ordinary projects of the shapes people have, generated for the tests: none is shaped like
the demo, none was written for ayna-fab (no Makefile, no systemd/, no health endpoint where
people often have none).

    notes   web only, manage.py at the repository's root, SQLite, the usual check warnings
    ledger  web + api at the root (Django and FastAPI side by side), PostgreSQL
    pinger  api only: a FastAPI app in a src/ layout
    jobs    web + Celery without beat, Django in backend/, SQLite
    orders  api + Celery without Django, in services/orders of a larger repository

Each is a git repository with one commit. Their dependencies are all in the sandbox's
wheelhouse; `lock` makes their uv.lock offline, against a PEP 503 index built from it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]

DB_FROM_URL = '''

def database_from_url(url):
    """DATABASES from DATABASE_URL, the way dj-database-url reads it (sqlite:////abs/path)."""
    parts = urlsplit(url)
    if parts.scheme in ("sqlite", "sqlite3"):
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parts.path[1:])}
    return {"ENGINE": "django.db.backends.postgresql", "NAME": parts.path.lstrip("/"),
            "USER": unquote(parts.username or ""), "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "", "PORT": parts.port or ""}
'''

SETTINGS = '''import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only")
DEBUG = os.environ.get("DEBUG", "0") == "1"
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "localhost").split(",")
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.staticfiles",
    {apps}
]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "{pkg}.urls"
WSGI_APPLICATION = "{pkg}.wsgi.application"
TEMPLATES = []
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
USE_TZ = True
'''
DATABASES = '''

DATABASES = {"default": database_from_url(os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
'''

MANAGE = '''#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{pkg}.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
'''

WSGI = '''import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{pkg}.settings")
application = get_wsgi_application()
'''

MODEL_APP = {
    "__init__.py": "",
    "models.py": '''from django.db import models


class {model}(models.Model):
    text = models.CharField(max_length=200)
''',
    "migrations/__init__.py": "",
    "migrations/0001_initial.py": '''from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="{model}",
            fields=[("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                    ("text", models.CharField(max_length=200))],
        ),
    ]
''',
    "views.py": '''from django.http import HttpResponse

from .models import {model}
from .version import VERSION


def home(request):
    return HttpResponse(f"{app} {{VERSION}}: {{{model}.objects.count()}} rows\\n", content_type="text/plain")
''',
    "version.py": 'VERSION = "one"\n',
}


def pyproject(name: str, deps: list[str]) -> str:
    return (f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
            "dependencies = [" + ", ".join(f'"{d}"' for d in deps) + "]\n\n[tool.uv]\npackage = false\n")


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def django_site(pkg: str, apps: list[str], urls: str) -> dict[str, str]:
    return {f"{pkg}/__init__.py": "",
            f"{pkg}/settings.py": SETTINGS.format(pkg=pkg, apps="\n    ".join(f'"{a}",' for a in apps))
            + DB_FROM_URL + DATABASES,
            f"{pkg}/urls.py": urls, f"{pkg}/wsgi.py": WSGI.format(pkg=pkg), "manage.py": MANAGE.format(pkg=pkg)}


def model_app(app: str, model: str) -> dict[str, str]:
    return {f"{app}/{k}": v.format(model=model, app=app) for k, v in MODEL_APP.items()}


# --- the shapes ----------------------------------------------------------------------------------

def notes(root: Path) -> Path:
    """Web only, manage.py at the root, SQLite; no health URL (its home page answers 200)."""
    urls = ('from django.urls import path\n\nfrom notes.views import home\n\n'
            'urlpatterns = [path("", home)]\n')
    write(root, {**django_site("notes_site", ["notes"], urls), **model_app("notes", "Note"),
                 "pyproject.toml": pyproject("notes", ["django>=5.2,<5.3", "gunicorn"]),
                 "README.md": "Notes: a small Django site.\n"})
    return root


LEDGER_API = '''import os

from fastapi import FastAPI

from api.version import VERSION

app = FastAPI(title="ledger")


@app.get("/health")
def health():
    return {"ok": True, "version": VERSION, "database": os.environ["DATABASE_URL"].split(":")[0]}
'''


def ledger(root: Path) -> Path:
    """Web + api side by side at the root (Django's manage.py, a FastAPI package), PostgreSQL."""
    urls = ('from django.http import JsonResponse\nfrom django.urls import path\n\nfrom entries.views import home\n\n\n'
            'def healthz(request):\n    return JsonResponse({"ok": True})\n\n\n'
            'urlpatterns = [path("", home), path("healthz/", healthz)]\n')
    write(root, {**django_site("ledger", ["entries"], urls), **model_app("entries", "Entry"),
                 "api/__init__.py": "", "api/main.py": LEDGER_API, "api/version.py": 'VERSION = "one"\n',
                 "pyproject.toml": pyproject("ledger", ["django>=5.2,<5.3", "gunicorn", "fastapi", "uvicorn",
                                                        "psycopg[binary]"])})
    return root


PINGER_API = '''from fastapi import FastAPI

from pinger.version import VERSION

app = FastAPI()


@app.get("/")
def root():
    return {"pinger": VERSION}
'''


def pinger(root: Path) -> Path:
    """An API alone: FastAPI in a src/ layout, no Django, no database; no health route."""
    write(root, {"src/pinger/__init__.py": "", "src/pinger/api.py": PINGER_API,
                 "src/pinger/version.py": 'VERSION = "one"\n',
                 "pyproject.toml": pyproject("pinger", ["fastapi", "uvicorn"])})
    return root


JOBS_CELERY = '''import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
app = Celery("jobsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
'''

JOBS_TASKS = '''from celery import shared_task

from .models import Job


@shared_task
def record(text):
    return Job.objects.create(text=text).pk
'''


def jobs(root: Path) -> Path:
    """Web + a Celery worker (no beat), Django in backend/, SQLite."""
    urls = ('from django.http import HttpResponse\nfrom django.urls import path\n\nfrom queue_app.views import home\n\n\n'
            'def health(request):\n    return HttpResponse("ok")\n\n\n'
            'urlpatterns = [path("", home), path("health/", health)]\n')
    site = django_site("jobsite", ["queue_app"], urls)
    site["jobsite/__init__.py"] = "from .celery import app as celery_app\n\n__all__ = (\"celery_app\",)\n"
    site["jobsite/celery.py"] = JOBS_CELERY
    site["jobsite/settings.py"] += 'CELERY_BROKER_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")\n'
    app = model_app("queue_app", "Job")
    app["queue_app/tasks.py"] = JOBS_TASKS
    write(root / "backend", {**site, **app})
    write(root, {"pyproject.toml": pyproject("jobs", ["django>=5.2,<5.3", "gunicorn", "celery[redis]"]),
                 "docs/index.md": "# jobs\n"})
    return root


ORDERS_MAIN = '''from fastapi import FastAPI

from orders.version import VERSION

app = FastAPI()


@app.get("/health")
def health():
    return {"orders": VERSION}
'''

ORDERS_WORKER = '''import os

from celery import Celery

app = Celery("orders", broker=os.environ["REDIS_URL"])


@app.task
def total(amounts):
    return sum(amounts)
'''


def orders(mono: Path) -> Path:
    """API + Celery without Django, in services/orders of a larger repository; returns the project."""
    write(mono, {"README.md": "A monorepo.\n", "web-frontend/package.json": '{"name": "frontend"}\n',
                 "libs/shared/README.md": "shared code\n"})
    root = mono / "services" / "orders"
    write(root, {"orders/__init__.py": "", "orders/main.py": ORDERS_MAIN, "orders/worker.py": ORDERS_WORKER,
                 "orders/version.py": 'VERSION = "one"\n',
                 "pyproject.toml": pyproject("orders", ["fastapi", "uvicorn", "celery[redis]"])})
    return root


SHAPES = {"notes": notes, "ledger": ledger, "pinger": pinger, "jobs": jobs, "orders": orders}


# --- git and uv.lock -----------------------------------------------------------------------------

def git(path: Path, *args: str) -> str:
    return subprocess.run([*GIT, "-C", str(path), *args], check=True, capture_output=True, text=True).stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def make(shape: str, dest: Path, *, lock_index: Path | None = None) -> tuple[Path, Path]:
    """(project, repository) of a shape in dest, committed; with lock_index, its uv.lock too."""
    repo = dest / shape
    repo.mkdir(parents=True)
    project = SHAPES[shape](repo)
    git(repo, "init", "-q")
    if lock_index is not None:
        lock(project, lock_index)
    commit(repo, f"{shape}: a small project")
    return project, repo


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def sandbox_inventory(sandbox, root: Path, host: str) -> tuple[Path, Path]:
    """(index, hosts.toml) for deploying corpus projects to the sandbox's first host, named host:
    a PEP 503 index of the sandbox's wheelhouse under root, and an inventory with that host and
    no project yet."""
    s = sandbox.settings
    index = simple_index(s.wheelhouse_dir, root / "index")
    inv = root / "hosts.toml"
    inv.write_text(f'[defaults]\nidentity_file = "{s.key_path}"\nknown_hosts = "{s.known_hosts_path}"\n\n'
                   f'[hosts.{host}]\nhostname = "127.0.0.1"\nport = {sandbox.hosts[0].ssh_port}\nprojects = []\n')
    return index, inv


def simple_index(wheelhouse: Path, dest: Path) -> Path:
    """A PEP 503 index of a wheelhouse (links carry sha256, so a lock made from it has hashes):
    dest/simple/NAME/index.html linking ../../files/WHEEL, dest/files holding the wheels (links)."""
    files = dest / "files"
    files.mkdir(parents=True, exist_ok=True)
    groups: dict[str, list[Path]] = {}
    for wheel in sorted(wheelhouse.glob("*.whl")):
        groups.setdefault(normalize(wheel.name.split("-")[0]), []).append(wheel)
        link = files / wheel.name
        if not link.exists():
            os.symlink(wheel, link)
    for name, wheels in groups.items():
        page = dest / "simple" / name
        page.mkdir(parents=True, exist_ok=True)
        links = "".join(f'<a href="../../files/{w.name}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">'
                        f"{w.name}</a><br>\n" for w in wheels)
        (page / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    (dest / "simple" / "index.html").write_text(
        "<!DOCTYPE html>\n<html><body>\n" + "".join(f'<a href="{n}/">{n}</a><br>\n' for n in groups)
        + "</body></html>\n")
    return dest / "simple"


def uv() -> str:
    return str(Path(sys.executable).with_name("uv"))


def lock(project: Path, index: Path) -> None:
    """uv.lock, offline, from the index (hashes included; hosts install from their own index)."""
    subprocess.run([uv(), "lock", "--offline", "--quiet", "--python", "3.11",
                    "--default-index", index.as_uri()], cwd=project, check=True, capture_output=True,
                   env={**os.environ, "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"})
