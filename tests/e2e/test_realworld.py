"""Public open-source projects, as their authors publish them (tests/corpus/, pinned, trimmed, with their
licences: tests/corpus/README.md), deployed to a sandbox host the way a new user would: `fab init`, the
fixes it prints and nothing else, init --write, setup, deploy, then a file saved through the project's
default storage, a one-file redeploy, a rollback, and the file still there.

`follow` does what each blocker init prints says; an edit no output asked for is marked UNPRINTED
(tests/corpus/README.md lists them). The user's machine locks offline against the sandbox's
wheelhouse (uv, Python 3.11 like the hosts).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests import corpus
from tests.e2e.conftest import REPO, fab

pytestmark = pytest.mark.e2e
HOST = "sandbox1"
VENDORED = REPO / "tests" / "corpus"
UPLOAD = "corpus-upload.txt"


class World:
    def __init__(self, sandbox, root: Path) -> None:
        self.sandbox = sandbox
        self.root = root
        self.index, self.inv = corpus.sandbox_inventory(sandbox, root, HOST)
        self.names: list[str] = []

    def checkout(self, vendored: str, name: str) -> Path:
        """The project as its repository has it, in a git repository of its own named `name`."""
        repo = self.root / "src" / name
        shutil.copytree(VENDORED / vendored, repo)
        corpus.git(repo, "init", "-q")
        (repo / ".git" / "info" / "exclude").write_text(".venv/\n__pycache__/\n")
        corpus.commit(repo, f"{vendored} as published")
        self.names.append(name)
        return repo

    def fab(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        started = time.monotonic()
        r = fab(*args, hosts_file=self.inv)
        print(f"fab {' '.join(args)[:80]}: exit {r.returncode} in {time.monotonic() - started:.1f}s")
        if ok:
            assert r.returncode == 0, f"fab {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
        return r

    def user_shell(self, command: str) -> None:
        """A command init printed, run as the user would on their machine (offline: the wheelhouse's index)."""
        config = self.root / "uv.toml"   # the user's own uv configuration: their index is not the project's
        config.write_text(f'[[index]]\nurl = "{self.index.as_uri()}"\ndefault = true\n')
        env = {**os.environ, "PATH": f"{Path(corpus.uv()).parent}:{os.environ['PATH']}", "UV_CONFIG_FILE": str(config),
               "UV_OFFLINE": "1", "UV_PYTHON": "/usr/bin/python3.11",
               "UV_PYTHON_DOWNLOADS": "never", "UV_NO_SYNC": "1",
               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t"}
        p = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True)
        assert p.returncode == 0, f"{command}\n{p.stdout}\n{p.stderr}"

    def manage_says(self, name: str, code: str) -> str:
        r = self.fab("-H", HOST, "manage", "--project", name, "--", "shell", "-c", code)
        return r.stdout

    def current(self, name: str) -> str:
        return self.sandbox.check(0, f"readlink /opt/ayna/{name}/releases/current").strip()

    def entry(self, name: str) -> str:
        return self.inv.read_text().split(f"[projects.{name}]", 1)[1].split("\n[", 1)[0]


@pytest.fixture(scope="module")
def w(sandbox, tmp_path_factory):
    world = World(sandbox, tmp_path_factory.mktemp("realworld"))
    yield world
    # the session's hosts go on to other tests: these projects stop running
    units = " ".join(f"'{name}-*.service' '{name}-*.socket'" for name in world.names)
    if units:
        sandbox.run(0, f"systemctl stop {units}")


# --- what every project goes through -------------------------------------------------------------

def blockers(out: str) -> list[tuple[str, str]]:
    """(problem, fix) of each line of init's "Before the first deploy" part (what blocks a deploy)."""
    if "Before the first deploy:" not in out:
        return []
    part = out.split("Before the first deploy:", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^  ✗ (.*)\n\s+fix: (.*)$", part, re.M)


def replace_line(path: Path, starts: str, line: str) -> None:
    """The settings line that begins with `starts`, replaced by `line` as a fix prints it."""
    lines = path.read_text().splitlines(keepends=True)
    at = next(i for i, old in enumerate(lines) if old.startswith(starts))
    lines[at] = line + "\n"
    path.write_text("".join(lines))


def follow(w: World, repo: Path, out: str, *, fill: dict[str, str] | None = None,
           own: dict[str, callable] | None = None) -> dict[str, str]:
    """Do what each blocker's fix says, as a user reads it: commands are run (a placeholder init left
    filled in), a settings line it spells out is written, a value for the .env is noted (returned: the
    .env exists once init --write has run). own: a project's own edit for a fix in words, by the start
    of its problem. Every blocker is answered, or the test fails naming it."""
    env_values = {}
    for problem, fix in blockers(out):
        if fix.startswith("cd "):
            for placeholder, value in (fill or {}).items():
                fix = fix.replace(placeholder, value)
            w.user_shell(fix)
        elif m := re.match(r"in (\S+): ((\w+) = .*); the \.env fab init writes", fix):
            replace_line(repo / m[1], f"{m[3]} =", m[2])
        elif m := re.match(r"the settings \S+ leave DEBUG = True \((\S+)\)", problem):
            replace_line(repo / m[1], "DEBUG =", re.search(r"\((DEBUG = .*?)\), or", fix)[1])
        elif problem.startswith("ALLOWED_HOSTS = [] leaves out 127.0.0.1"):
            path = next(p for p in sorted(repo.rglob("*.py")) if "\nALLOWED_HOSTS = []\n" in p.read_text())
            replace_line(path, "ALLOWED_HOSTS =", 'ALLOWED_HOSTS = ["127.0.0.1"]')
        elif m := re.match(r"the code reads (\w+) from the environment, without a default", problem):
            env_values[m[1]] = "set-by-hand"
        else:
            edit = next((f for start, f in (own or {}).items() if problem.startswith(start)), None)
            assert edit is not None, f"no edit for: {problem} / {fix}"
            edit(repo)
    if corpus.git(repo, "status", "--porcelain"):
        corpus.commit(repo, "the fixes fab init printed")   # only committed code is deployed
    return env_values


def init_write_setup(w: World, name: str, repo: Path, env_values: dict[str, str],
                     unprinted: dict[str, str] | None = None) -> None:
    """init --write, the .env values the fixes asked for (and, marked UNPRINTED, values nothing
    printed but the project needs), setup."""
    out = w.fab("init", str(repo), "--write", "--host", HOST).stdout
    env_file = w.root / f"{name}.env"
    text = env_file.read_text()
    for key, value in {**env_values, **(unprinted or {})}.items():
        text, found = re.subn(rf"^#?{key}=.*$", f"{key}={value}", text, flags=re.M)
        text += "" if found else f"{key}={value}\n"
    env_file.write_text(text)
    assert "CHANGE-ME" not in text
    left = [problem for problem, _ in blockers(out) if not any(k in problem for k in env_values)]
    assert left == [] and ("Nothing stands in the way of a first deploy." in out or env_values), out
    w.fab("-H", HOST, "setup", "--project", name)


def first_deploy(w: World, name: str) -> None:
    r = w.fab("-H", HOST, "deploy", "--project", name)
    assert "live and healthy" in r.stdout and "MEDIA_ROOT" not in r.stdout, r.stdout


def an_upload_survives_a_redeploy_and_a_rollback(w: World, name: str, repo: Path, touched: str) -> None:
    saved = w.manage_says(name, "from django.core.files.base import ContentFile; "
                                "from django.core.files.storage import default_storage as s; "
                                f"print('saved', s.save('{UPLOAD}', ContentFile(b'kept')))")
    assert f"saved {UPLOAD}" in saved, saved
    assert w.sandbox.check(0, f"cat /opt/ayna/{name}/shared/media/{UPLOAD}") == "kept"
    live = w.current(name)

    path = repo / touched   # a one-file change, as most deploys are
    path.write_text(path.read_text() + "\n# deployed again\n")
    corpus.commit(repo, "one file changed")
    r = w.fab("-H", HOST, "deploy", "--project", name)
    assert re.search(r"\b1 files? sent", r.stdout) and "live and healthy" in r.stdout, r.stdout
    exists = ("from django.core.files.storage import default_storage as s; "
              f"print('exists', s.exists('{UPLOAD}'), s.open('{UPLOAD}').read())")
    assert "exists True b'kept'" in w.manage_says(name, exists)

    w.fab("-H", HOST, "rollback", "--project", name)
    assert w.current(name) == live
    assert "exists True b'kept'" in w.manage_says(name, exists)


# --- the projects ---------------------------------------------------------------------------------

def test_wagtail_bakerydemo_a_cms_with_split_requirements_and_a_settings_package(w):
    repo = w.checkout("bakerydemo", "bakerydemo")
    out = w.fab("init", str(repo)).stdout
    assert "bakerydemo.settings.production (Dockerfile sets it)" in out, out
    env_values = follow(w, repo, out)
    assert (repo / "uv.lock").is_file() and "gunicorn" in (repo / "pyproject.toml").read_text()
    # the production settings append "/0" and "/1" to REDIS_URL (read as REDIS_TLS_URL's default):
    # init writes it without a database number
    init_write_setup(w, "bakerydemo", repo, env_values)
    assert "\nREDIS_URL=redis://localhost:6379\n" in (w.root / "bakerydemo.env").read_text()
    # runtime.txt declares Python 3.12 (init said so); the host has 3.11: refused at plan, before
    # anything is uploaded. The way out the refusal prints for a project that runs on 3.11:
    assert "  Python       >=3.12 (runtime.txt: python-3.12" in out, out
    r = w.fab("-H", HOST, "deploy", "--project", "bakerydemo", ok=False)
    said = r.stdout + r.stderr
    assert r.returncode == 1 and "the host's Python is 3.11" in said and "needs Python >=3.12" in said, said
    fix = re.search(r'python = "3\.11" under \[projects\.bakerydemo\] in hosts\.toml', said)
    assert fix, said
    w.inv.write_text(w.inv.read_text().replace("[projects.bakerydemo]\n", '[projects.bakerydemo]\npython = "3.11"\n', 1))
    first_deploy(w, "bakerydemo")
    an_upload_survives_a_redeploy_and_a_rollback(w, "bakerydemo", repo, "bakerydemo/settings/base.py")


def database_url(repo: Path) -> None:
    """init's "read DATABASES from DATABASE_URL (e.g. with dj-database-url, ...)", as a user writes it."""
    settings = repo / "app" / "hello_django" / "settings.py"
    text = settings.read_text()
    start = text.index("DATABASES = {")
    end = text.index("\n}\n", start) + 3
    settings.write_text("import dj_database_url\n" + text[:start]
                        + 'DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}\n' + text[end:])


def test_django_on_docker_an_app_in_a_subdirectory_with_docker_env_files(w):
    repo = w.checkout("django-on-docker", "ondocker")
    out = w.fab("init", str(repo)).stdout
    # init finds app/requirements.txt beside app/manage.py; the DATABASES fix names dj-database-url,
    # which the user adds to the lock command init prints
    assert "uv add -r app/requirements.txt " in out, out
    env_values = follow(w, repo, out, fill={"uv add -r app/requirements.txt": "uv add -r app/requirements.txt dj-database-url"},
                        own={"the settings set DATABASES themselves": database_url})
    # the settings split DJANGO_ALLOWED_HOSTS on spaces and read DEBUG as bool() of the text: init's
    # .env says so (spaces; DEBUG empty, the only value that is false there)
    init_write_setup(w, "ondocker", repo, env_values)
    env = (w.root / "ondocker.env").read_text()
    assert "\nDJANGO_ALLOWED_HOSTS=127.0.0.1 localhost\n" in env and "\nDEBUG=\n" in env, env
    first_deploy(w, "ondocker")
    an_upload_survives_a_redeploy_and_a_rollback(w, "ondocker", repo, "app/upload/views.py")


def test_locallibrary_a_tutorial_project_with_a_procfile_and_no_default_storage(w):
    repo = w.checkout("locallibrary", "library")
    env_values = follow(w, repo, w.fab("init", str(repo)).stdout)
    init_write_setup(w, "library", repo, env_values)
    first_deploy(w, "library")
    # its STORAGES has no "default": it keeps no uploads, and check has nothing to refuse; what it
    # keeps is its database, which a redeploy and a rollback leave as it is
    said = w.manage_says("library", "from django.core.files.storage import default_storage as s\n"
                                    "try:\n    s.location\nexcept Exception as e:\n    print('none:', type(e).__name__)")
    assert "none: InvalidStorageError" in said, said
    count = "from catalog.models import Genre; print('genres', Genre.objects.filter(name='Corpus').count())"
    w.manage_says("library", "from catalog.models import Genre; Genre.objects.create(name='Corpus')")
    live = w.current("library")
    path = repo / "catalog" / "views.py"
    path.write_text(path.read_text() + "\n# deployed again\n")
    corpus.commit(repo, "one file changed")
    r = w.fab("-H", HOST, "deploy", "--project", "library")
    assert re.search(r"\b1 files? sent", r.stdout) and "live and healthy" in r.stdout, r.stdout
    assert "genres 1" in w.manage_says("library", count)
    w.fab("-H", HOST, "rollback", "--project", "library")
    assert w.current("library") == live and "genres 1" in w.manage_says("library", count)
