"""Public open-source projects, as their authors publish them (tests/corpus/, pinned, trimmed, with their
licences: tests/corpus/README.md), deployed to a sandbox host the way a new user would: `fab init`, the
fixes it prints and nothing else, setup, deploy, the fixes the deploy prints, then a file saved through
the project's default storage, a one-file redeploy, a rollback, and the file still there.

Every edit a project needs is one function here, named for the line of output it answers, which is
asserted first; an edit no output asked for is marked UNPRINTED (tests/corpus/README.md lists them).
The user's machine locks offline against the sandbox's wheelhouse (uv, Python 3.11 like the hosts).
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
        self.index = corpus.simple_index(sandbox.settings.wheelhouse_dir, root / "index")
        self.inv = root / "hosts.toml"
        s = sandbox.settings
        self.inv.write_text(f'[defaults]\nidentity_file = "{s.key_path}"\nknown_hosts = "{s.known_hosts_path}"\n\n'
                            f'[hosts.{HOST}]\nhostname = "127.0.0.1"\nport = {sandbox.hosts[0].ssh_port}\n'
                            "projects = []\n")
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

def fixes_printed(out: str) -> list[str]:
    """The lines `fix: ...` of init's "Before the first deploy" part (what blocks a deploy)."""
    blockers = out.split("Before the first deploy:", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\s+fix: (.*)$", blockers, re.M)


def run_printed_commands(w: World, fixes: list[str], *, fill: dict[str, str] | None = None) -> list[str]:
    """Run every fix that is a command (`cd DIR && ...`), with a placeholder filled in where init left
    one; the other fixes (advice in words) are returned for the project's own edits."""
    words = []
    for fix in fixes:
        if not fix.startswith("cd "):
            words.append(fix)
            continue
        for placeholder, value in (fill or {}).items():
            fix = fix.replace(placeholder, value)
        w.user_shell(fix)
    return words


MEDIA_REFUSAL = re.compile(r"^\s*MEDIA_ROOT=(/opt/ayna/[^\s]+/shared/media)$", re.M)


def deploy_until_the_media_fix(w: World, name: str, repo: Path, settings: str, was: str) -> str:
    """The first deploy stops at check, before anything live changes, because uploads would land in the
    release (was: the settings' MEDIA_ROOT line); the fix it prints is applied (settings read
    MEDIA_ROOT, the env file sets it, setup uploads it) and the next deploy goes live."""
    r = w.fab("-H", HOST, "deploy", "--project", name, ok=False)
    said = r.stdout + r.stderr
    assert r.returncode == 1 and "failed at check" in said, said
    assert "MEDIA_ROOT resolves to" in said and "inside the release" in said, said
    assert w.sandbox.run(0, f"test -e /opt/ayna/{name}/releases/current")[0] != 0   # nothing went live
    assert "`fab setup --force-env`" in said
    shared = MEDIA_REFUSAL.search(said).group(1)
    assert shared == f"/opt/ayna/{name}/shared/media"
    path = repo / settings
    text = path.read_text()
    assert was in text, text
    path.write_text(text.replace(was, f'MEDIA_ROOT = os.environ.get("MEDIA_ROOT", {was.split("=", 1)[1].strip()})'))
    corpus.commit(repo, "MEDIA_ROOT from the environment, as the deploy asked")
    env_file = w.root / f"{name}.env"
    env_file.write_text(env_file.read_text() + f"MEDIA_ROOT={shared}\n")
    w.fab("-H", HOST, "setup", "--project", name, "--force-env")
    r = w.fab("-H", HOST, "deploy", "--project", name)
    assert "live and healthy" in r.stdout and "MEDIA_ROOT" not in r.stdout, r.stdout
    return r.stdout


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
    words = run_printed_commands(w, fixes_printed(out))
    assert words == [], out        # the lock and gunicorn: both commands
    corpus.commit(repo, "gunicorn, as fab init asked")   # only committed code is deployed
    assert (repo / "uv.lock").is_file() and "gunicorn" in (repo / "pyproject.toml").read_text()

    out = w.fab("init", str(repo), "--write", "--host", HOST).stdout
    assert "Nothing stands in the way of a first deploy." in out, out
    assert "CHANGE-ME" not in (w.root / "bakerydemo.env").read_text()
    w.fab("-H", HOST, "setup", "--project", "bakerydemo")
    deploy_until_the_media_fix(w, "bakerydemo", repo, "bakerydemo/settings/base.py",
                               'MEDIA_ROOT = os.path.join(PROJECT_DIR, "media")')
    an_upload_survives_a_redeploy_and_a_rollback(w, "bakerydemo", repo, "bakerydemo/settings/base.py")


def test_django_on_docker_an_app_in_a_subdirectory_with_docker_env_files(w):
    repo = w.checkout("django-on-docker", "ondocker")
    out = w.fab("init", str(repo)).stdout
    # init finds no requirements file at the root: the user names app/requirements.txt where it says
    # DEPENDENCIES... (UNPRINTED: which file), and adds dj-database-url for the DATABASES fix below
    words = run_printed_commands(w, fixes_printed(out),
                                 fill={"DEPENDENCIES...": "-r app/requirements.txt dj-database-url"})
    assert words == ["read DATABASES from DATABASE_URL in the settings (e.g. with dj-database-url, or by parsing "
                     "os.environ['DATABASE_URL'])"], out
    settings = repo / "app" / "hello_django" / "settings.py"
    text = settings.read_text()
    start = text.index("DATABASES = {")
    end = text.index("\n}\n", start) + 3
    settings.write_text("import dj_database_url\n" + text[:start]
                        + 'DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}\n'
                        + text[end:])
    corpus.commit(repo, "DATABASES from DATABASE_URL, as fab init asked")

    out = w.fab("init", str(repo), "--write", "--host", HOST).stdout
    assert "Nothing stands in the way of a first deploy." in out, out
    env_file = w.root / "ondocker.env"
    # UNPRINTED: the settings split DJANGO_ALLOWED_HOSTS without a default; the .env has it commented out
    env_file.write_text(env_file.read_text().replace("#DJANGO_ALLOWED_HOSTS=", "DJANGO_ALLOWED_HOSTS=localhost 127.0.0.1"))
    w.fab("-H", HOST, "setup", "--project", "ondocker")
    deploy_until_the_media_fix(w, "ondocker", repo, "app/hello_django/settings.py",
                               'MEDIA_ROOT = BASE_DIR / "mediafiles"')
    an_upload_survives_a_redeploy_and_a_rollback(w, "ondocker", repo, "app/upload/views.py")


def test_locallibrary_a_tutorial_project_with_a_procfile_and_no_default_storage(w):
    repo = w.checkout("locallibrary", "library")
    out = w.fab("init", str(repo)).stdout
    assert run_printed_commands(w, fixes_printed(out)) == [], out   # the lock: one command
    out = w.fab("init", str(repo), "--write", "--host", HOST).stdout
    assert "Nothing stands in the way of a first deploy." in out, out
    w.fab("-H", HOST, "setup", "--project", "library")
    r = w.fab("-H", HOST, "deploy", "--project", "library")
    assert "live and healthy" in r.stdout and "MEDIA_ROOT" not in r.stdout, r.stdout
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
