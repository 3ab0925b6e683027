"""prepare runs at once what nothing orders (hostprog/prepare.py): the backup beside the install, and a
release that takes the live venv as it is runs its check beside both, in that venv. Migrate waits
at a gate for both to end well. The real prepare call and the real Django-steps program run here,
against temporary releases, with a stand-in `django` package that logs when each command runs."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from ayna_fab.hostprog import calls, dumps, prepare, wire
from tests.polling import wait_until

DJANGO_STUB = {
    "__init__.py": "def setup():\n    pass\n",
    "core/__init__.py": "",
    "core/management/__init__.py": (
        "import os, time\n"
        "LOG = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'calls.log')\n"
        "def call_command(name, **kw):\n"
        "    with open(LOG, 'a') as f:\n"
        "        f.write(f'{name} start {time.time()}\\n')\n"
        "    time.sleep(float(os.environ.get('STUB_CHECK_SECONDS', '0')) if name == 'check' else 0)\n"
        "    waits_for, deadline = os.environ.get('STUB_CHECK_WAITS_FOR'), time.monotonic() + 20\n"
        "    while name == 'check' and waits_for and not os.path.exists(waits_for) and time.monotonic() < deadline:\n"
        "        time.sleep(0.02)\n"
        "    with open(LOG, 'a') as f:\n"
        "        f.write(f'{name} end {time.time()}\\n')\n"),
    "conf/__init__.py": "class settings:\n    DEBUG = False\n    MEDIA_ROOT = ''\n",   # check reads both
    "db/__init__.py": "DEFAULT_DB_ALIAS = 'default'\nconnections = {'default': None}\n",
    "core/files/__init__.py": "",
    "apps.py": "class apps:\n    get_models = staticmethod(lambda: [])\n",
    "db/models.py": "class FileField:\n    pass\n",
    "core/files/storage.py": "class FileSystemStorage:\n    location = ''\n\ndefault_storage = FileSystemStorage()\n",
    "db/migrations/__init__.py": "",
    "db/migrations/executor.py": (   # the migration plan: STUB_PENDING migrations, logged when asked
        "import os, time\n"
        "from django.core.management import LOG\n"
        "class _Graph:\n"
        "    def leaf_nodes(self):\n"
        "        return []\n"
        "class MigrationExecutor:\n"
        "    def __init__(self, connection):\n"
        "        self.loader = type('Loader', (), {'graph': _Graph()})()\n"
        "    def migration_plan(self, targets):\n"
        "        with open(LOG + '.plan', 'a') as f:\n"
        "            f.write(f'{time.time()}\\n')\n"
        "        return [None] * int(os.environ.get('STUB_PENDING', '1'))\n"),
}


def release(root, name, lock="lock-1"):
    rel = root / "releases" / name
    web = rel / "src" / "web"
    for path, text in DJANGO_STUB.items():
        (web / "django" / path).parent.mkdir(parents=True, exist_ok=True)
        (web / "django" / path).write_text(text)
    (rel / "uv.lock").write_text(lock)
    (rel / "pyproject.toml").write_text("[project]\nname='x'\n")
    return rel


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A live v1 with a relocatable venv whose python is this one, and a new v2 with the same lock."""
    live = release(tmp_path, "v1")
    (live / ".venv" / "bin").mkdir(parents=True)
    (live / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\nrelocatable = true\n")
    os.symlink(sys.executable, live / ".venv" / "bin" / "python")
    (live / prepare.REQUIREMENTS).write_text("django==5.0 --hash=sha256:00\n")
    env_file = tmp_path / ".env.production"
    env_file.write_text("SECRET_KEY=x\n")
    monkeypatch.setattr(prepare.lock, "require", lambda root, token: None)
    monkeypatch.setenv("STUB_CHECK_SECONDS", "0.6")
    backups = []

    def take(root, env_file_, project, release_, keep, protect=(), before_migrate=False):
        backups.append(("start", time.time()))
        (tmp_path / "backup-began").touch()
        if os.environ.get("STUB_CHECK_WAITS_FOR"):   # meet(): the backup waits for the check to begin
            wait_until(lambda: ("check", "start") in log(tmp_path), 20)
        time.sleep(0.3)
        if "backup" in failing:
            raise wire.Refused("pg_dump", "pg_dump exited 1: connection refused")
        backups.append(("end", time.time()))
        return {"backup": "x.dump", "seconds": 0.3}

    failing: set[str] = set()
    monkeypatch.setattr(dumps, "take", take)
    return tmp_path, live, env_file, failing, backups


def call(tmp_path, live, env_file, steps=("install", "backup", "check", "migrate", "collectstatic"), hooks=()):
    return calls.Prepare(root=str(tmp_path), token="t", number=2, steps=list(steps),
                         base_venv=str(live / ".venv"), env_file=str(env_file), uv_cache=str(tmp_path / "uv"),
                         django_dir="src/web", asgi_dir=None, asgi_app=None, project="p", keep_backups=5,
                         backup_release="v1", servers=[], preflight_timeout=10, checks="errors", allow_debug=False,
                         uv_config=str(tmp_path / "uv.toml"), hooks=list(hooks), hook_env={})


def log(tmp_path, name="v2"):
    """{(command, start|end): time} from the stand-in django of release name."""
    path = tmp_path / "releases" / name / "src" / "web" / "calls.log"
    rows = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
    return {(c, what): float(t) for c, what, t in rows}


def slow_install(monkeypatch, seconds=0.5, fail=False):
    real = prepare.install_script
    ends = []

    def script(rel, base_venv):
        return f"sleep {seconds}\n" + ("exit 1\n" if fail else real(rel, base_venv) + f"date +%s.%N > {rel}/.installed\n")

    monkeypatch.setattr(prepare, "install_script", script)
    return ends


def meet(monkeypatch, tmp_path):
    """Install, backup and check each wait (20 s at most) until the others have begun: run one
    after another, the first would give up waiting and the order of the log would show it."""
    backup_began = tmp_path / "backup-began"      # touched by the host fixture's stand-in backup
    monkeypatch.setenv("STUB_CHECK_SECONDS", "0")
    monkeypatch.setenv("STUB_CHECK_WAITS_FOR", str(backup_began))   # the check, for the backup
    real = prepare.install_script
    calls_log = tmp_path / "releases" / "v2" / "src" / "web" / "calls.log"
    monkeypatch.setattr(prepare, "install_script", lambda rel, base_venv: (
        "i=0; until { [ -e %s ] && grep -q '^check start' %s; } 2>/dev/null || [ $i -ge 400 ]; do "
        "sleep 0.05; i=$((i+1)); done\n" % (backup_began, calls_log)
        + real(rel, base_venv) + f"date +%s.%N > {rel}/.installed\n"))


def test_the_check_runs_beside_the_install_and_migrate_waits_for_install_and_backup(host, monkeypatch, capsys):
    tmp_path, live, env_file, failing, backups = host
    release(tmp_path, "v2")
    meet(monkeypatch, tmp_path)
    result = prepare.prepare(call(tmp_path, live, env_file))
    assert result["failed"] is None, result
    calls_ = log(tmp_path)
    installed = float((tmp_path / "releases" / "v2" / ".installed").read_text())
    assert calls_[("check", "start")] < installed            # the check did not wait for the install
    assert calls_[("migrate", "start")] > installed           # migrate did
    assert calls_[("migrate", "start")] > dict(backups)["end"]  # and for the backup
    assert dict(backups)["start"] < installed                 # which ran beside the install
    # and the check beside the backup: each of the three began before the others ended
    assert calls_[("check", "start")] < dict(backups)["end"] and dict(backups)["start"] < calls_[("check", "end")]
    reported = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith(wire.STEP)]
    assert reported == ["install", "backup", "check", "migrate", "collectstatic"]
    assert list(result["steps"]) == reported


@pytest.mark.parametrize("what", ["install", "backup"])
def test_nothing_is_migrated_when_the_install_or_the_backup_fails(host, monkeypatch, what):
    tmp_path, live, env_file, failing, backups = host
    release(tmp_path, "v2")
    slow_install(monkeypatch, 0.2, fail=what == "install")
    if what == "backup":
        failing.add("backup")
    result = prepare.prepare(call(tmp_path, live, env_file))
    assert result["failed"] == what
    calls_ = log(tmp_path)
    assert ("check", "end") in calls_                         # it ran beside, and stopped at the gate
    assert not {c for c, _ in calls_} - {"check"}, calls_     # no migrate, no collectstatic
    assert "migrate" not in result["steps"]


def test_no_migration_pending_no_dump_and_the_plan_is_read_beside_the_install(host, monkeypatch, capsys):
    tmp_path, live, env_file, failing, backups = host
    release(tmp_path, "v2")
    slow_install(monkeypatch, 0.5)
    monkeypatch.setenv("STUB_PENDING", "0")
    result = prepare.prepare(call(tmp_path, live, env_file))
    assert result["failed"] is None and result["backup"] is None, result
    assert backups == []
    installed = float((tmp_path / "releases" / "v2" / ".installed").read_text())
    plan = tmp_path / "releases" / "v2" / "src" / "web" / "calls.log.plan"
    assert float(plan.read_text()) < installed                # asked of the live venv, not after the install
    assert ("migrate", "start") in log(tmp_path)             # Django's own migrate still runs (a no-op)
    out = capsys.readouterr().out
    assert prepare.NOT_NEEDED in out


def test_a_changed_lock_checks_only_once_its_own_venv_is_installed(host, monkeypatch):
    tmp_path, live, env_file, failing, backups = host
    rel = release(tmp_path, "v2", lock="lock-2")
    # uv would build the venv; the stand-in links this python into it
    monkeypatch.setattr(prepare, "install_script", lambda r, b: (
        f"sleep 0.3; mkdir -p {r}/.venv/bin && ln -s {sys.executable} {r}/.venv/bin/python; "
        f"date +%s.%N > {r}/.installed\n"))
    result = prepare.prepare(call(tmp_path, live, env_file))
    assert result["failed"] is None, result
    installed = float((rel / ".installed").read_text())
    assert log(tmp_path)[("check", "start")] > installed


def test_after_install_hooks_run_before_the_check(host, monkeypatch):
    tmp_path, live, env_file, failing, backups = host
    rel = release(tmp_path, "v2")
    slow_install(monkeypatch, 0.1)
    monkeypatch.setattr(prepare.hookrunner, "run_all", lambda hooks_, rel_, env, phase: (
        (rel / ".hooked").write_text(str(time.time())), [{"name": "h", "ok": True, "output": ""}])[1])
    result = prepare.prepare(call(tmp_path, live, env_file, hooks=[{"name": "h", "command": ["true"], "timeout": 5}]))
    assert result["failed"] is None, result
    assert log(tmp_path)[("check", "start")] > float((rel / ".hooked").read_text())


def test_the_gate_is_read_by_the_django_steps_program_itself(tmp_path):
    """Closed (b"0" or its writer gone), the program ends after check having run nothing more."""
    rel = release(tmp_path, "v2")
    for word in (b"0", b""):
        (rel / "src" / "web" / "calls.log").unlink(missing_ok=True)
        r, w = os.pipe()
        import subprocess
        p = subprocess.Popen([sys.executable, "-c", prepare.source("django_steps"),
                              json.dumps({"steps": ["check", "migrate"], "asgi_app": None, "gate": r})],
                             cwd=rel / "src" / "web", pass_fds=(r,), stdout=subprocess.PIPE, text=True)
        os.close(r)
        os.write(w, word) if word else None
        os.close(w)
        out = p.communicate(timeout=30)[0]
        assert p.returncode == 0 and "@@step check" in out and "migrate" not in out
        assert set(log(tmp_path)) == {("check", "start"), ("check", "end")}
