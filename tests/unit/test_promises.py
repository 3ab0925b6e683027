"""What the README promises and no other test held to: `fab unlock` (at once, --force, never while a
step runs), rollback naming the migrations its target lacks, status showing an activation in course
and a lock whose laptop is gone, a fleet rollback asking for --to when the hosts' previous releases
differ, restore finding the backup on every host before it changes any, the host program cache's
30-day expiry, and `fab init --write` putting hosts.toml back when the edited file would not load.

The tasks and operations run as they do for a person; the hosts are fake (tests/fakehost.py: the real
host program, in this process, with systemd faked), each with a disk of its own.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from pathlib import Path

import pytest
from invoke import Context
from invoke.exceptions import Exit

from ayna_fab.cli.tasks.daytwo import restore
from ayna_fab.cli.tasks.init import init
from ayna_fab.cli.tasks.release import unlock
from ayna_fab.commands import hostcalls as cmd
from ayna_fab.config import model as config
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Project
from ayna_fab.errors import UsageError
from ayna_fab.hostprog import journal, store
from ayna_fab.hostprog import lock as hostlock
from ayna_fab.ops import lockrecord as lock
from ayna_fab.ops.rollback import Options as RollbackOptions
from ayna_fab.ops.rollback import Rollback
from ayna_fab.ops.runner import HostRun, run
from ayna_fab.ops.status import collect, lock_cell
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Remote
from tests.fakehost import FakeRemote, HostState

BASE = "/opt/ayna"   # hosts.toml's base_dir (the default); each fake host keeps it in a folder of its own


class OwnDisk(FakeRemote):
    """A fake host whose paths under BASE are its own folder's: hosts of one inventory share base_dir."""

    def __init__(self, name, disk, state):
        super().__init__(name, disk + BASE + "/demo", state)
        self.disk = disk

    def answer(self, name, call):
        return super().answer(name, self._here(call))

    def _here(self, value):
        if isinstance(value, str):
            return self.disk + value if value == BASE or value.startswith(BASE + "/") else value
        if isinstance(value, list):
            return [self._here(v) for v in value]
        if isinstance(value, dict):
            return {k: self._here(v) for k, v in value.items()}
        if dataclasses.is_dataclass(value):
            return dataclasses.replace(value, **{f.name: self._here(getattr(value, f.name))
                                                 for f in dataclasses.fields(value)})
        return value


class World:
    """hosts.toml (project demo on the given hosts) and one fake host per name, set up as by setup."""

    def __init__(self, tmp: Path, hosts=("h1",), default_target="h1") -> None:
        self.tmp = tmp
        lines = ["[defaults]", f'default_target = "{default_target}"', "",
                 "[projects.demo]", f'source = "{tmp}"', "port_base = 8200", 'services = ["web"]',
                 'env = "production"', ""]
        for h in hosts:
            lines += [f"[hosts.{h}]", 'hostname = "127.0.0.1"', 'projects = ["demo"]', ""]
        lines += ["[groups]", "fleet = [" + ", ".join(f'"{h}"' for h in hosts) + "]", ""]
        self.hosts_file = tmp / "hosts.toml"
        self.hosts_file.write_text("\n".join(lines))
        self.cfg = config.load(self.hosts_file)
        self.project = self.cfg.projects["demo"]
        self.remotes = {h: OwnDisk(h, str(tmp / h), HostState()) for h in hosts}
        self.said: list[str] = []
        for h in hosts:
            root = self.root(h)
            for d in ("releases", "shared/backups", "logs"):
                os.makedirs(f"{root}/{d}")
            Path(f"{root}/shared/.env.production").write_text("SECRET_KEY=x\n")

    def root(self, host="h1") -> str:
        return self.remotes[host].root

    def release(self, host: str, number: int, state: str, files=()) -> None:
        """releases/vN, complete, in state; files: paths made inside it."""
        rel = store.release_dir(self.root(host), number)
        os.makedirs(f"{rel}/.venv/bin")
        Path(f"{rel}/.venv/bin/python").write_text("")
        Path(f"{rel}/{store.MANIFEST}").write_text("")
        store.write_json(f"{rel}/{store.META}", {"state": state, "release": f"v{number}"})
        for name in files:
            os.makedirs(os.path.dirname(f"{rel}/{name}"), exist_ok=True)
            Path(f"{rel}/{name}").write_text("")
        if state == "active":
            store.flip(self.root(host), number)

    def targets(self):
        owner = lock.owner("rollback")
        return [HostRun(self.cfg, self.cfg.hosts[h], self.project, r, owner, self.said.append)
                for h, r in self.remotes.items()]

    def rollback(self, to=None):
        FakeRemote.laptop_dead = False
        op = Rollback(self.cfg, self.project, RollbackOptions(to=to), self.targets())
        run(op, self.said.append)
        return op


@pytest.fixture
def world(tmp_path, monkeypatch):
    """One host, h1; the tasks read this hosts.toml and reach the fake hosts."""
    return connected(World(tmp_path), monkeypatch)


def connected(w: World, monkeypatch) -> World:
    monkeypatch.setenv(config.ENV_VAR, str(w.hosts_file))
    monkeypatch.setattr(Remote, "open", classmethod(lambda cls, ep, **kw: w.remotes[ep.name]))
    return w


def refused(task, *args, **kwargs) -> int:
    """Run a task that must fail: its exit code (the message went to the output)."""
    with pytest.raises(Exit) as exc:
        task(Context(), *args, **kwargs)
    return exc.value.code


def gone_pid() -> int:
    """A pid of this machine that no longer runs."""
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


# --- fab unlock ---------------------------------------------------------------------------------

def lock_of(w: World, pid: int, idle_seconds: float = 0.0) -> None:
    owner = dict(lock.owner("deploy"), pid=pid)
    assert hostlock.take(w.root(), owner) is None
    touched = time.time() - idle_seconds
    os.utime(os.path.join(hostlock.path(w.root()), hostlock.OWNER), (touched, touched))


def locked(w: World) -> bool:
    return hostlock.holder(w.root()) is not None


def test_unlock_removes_at_once_a_lock_whose_process_is_gone_on_this_machine(world, capsys):
    lock_of(world, gone_pid())
    unlock(Context())
    assert not locked(world)
    assert "removed the lock of" in capsys.readouterr().out


def test_unlock_removes_at_once_a_lock_nothing_has_touched_for_15_minutes(world):
    lock_of(world, os.getpid(), idle_seconds=lock.STALE_AFTER_SECONDS + 60)
    unlock(Context())
    assert not locked(world)


def test_unlock_refuses_a_lock_that_may_be_live_unless_forced(world, capsys):
    lock_of(world, os.getpid())   # its process runs here, and it was touched just now
    assert refused(unlock) == 2 and locked(world)
    assert "may be live" in capsys.readouterr().err
    unlock(Context(), force=True)
    assert not locked(world)


def test_unlock_never_removes_a_lock_with_a_step_still_running_not_even_forced(world, capsys):
    lock_of(world, gone_pid(), idle_seconds=lock.STALE_AFTER_SECONDS + 60)
    step = subprocess.Popen(["sleep", "60"])
    try:
        hostlock.mark_working(world.root(), "migrate", pid=step.pid)
        assert refused(unlock) == 2 and locked(world)
        assert refused(unlock, force=True) == 2 and locked(world)
        assert f"pid {step.pid} is still running migrate" in capsys.readouterr().err
    finally:
        step.kill()
        step.wait()
    unlock(Context())   # the step ended: the lock can go
    assert not locked(world)


# --- status ---------------------------------------------------------------------------------------

def test_status_shows_the_activation_in_course_and_a_lock_whose_laptop_is_gone(world):
    world.release("h1", 3, "active")
    world.release("h1", 4, "building")
    lock_of(world, os.getpid())
    pid = os.fork()
    if pid == 0:   # the lock's holder: the plan call kept alive by the laptop's connection, then gone
        try:
            hostlock.mark_holding(world.root())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    journal.write(world.root(), {"token": "t", "number": 4, "back": 3, "steps": [], "phase": "health",
                                 "outcome": None, "started": time.time()})
    [row] = collect(world.cfg, [(world.cfg.hosts["h1"], [world.project])])
    cell = lock_cell(row)
    assert "(its laptop is gone: the next deploy or rollback settles it)" in cell
    assert cell.endswith("activating v4: health")


def test_status_shows_no_activation_once_it_is_done(world):
    world.release("h1", 3, "active")
    journal.write(world.root(), {"token": "t", "number": 3, "phase": "done", "outcome": "live"})
    [row] = collect(world.cfg, [(world.cfg.hosts["h1"], [world.project])])
    assert lock_cell(row) == "-"


# --- rollback ---------------------------------------------------------------------------------------

MIGRATIONS = "src/web/shop/migrations"


def test_rollback_names_the_migrations_its_target_lacks(world):
    world.release("h1", 2, "previous", files=[f"{MIGRATIONS}/0001_initial.py", f"{MIGRATIONS}/__init__.py"])
    world.release("h1", 3, "active", files=[f"{MIGRATIONS}/0001_initial.py", f"{MIGRATIONS}/0002_price.py",
                                            f"{MIGRATIONS}/__init__.py", "src/web/tags/migrations/0001_initial.py"])
    world.rollback()
    assert store.current_number(world.root()) == 2
    notes = [line for line in world.said if "had migrations" in line]
    assert notes == ["[h1] note: v3 had migrations v2 lacks, and the database keeps them applied: "
                     "shop.0002_price, tags.0001_initial. Undo them with `manage.py migrate APP PREVIOUS` "
                     "if the older code cannot work with them."]


def test_rollback_to_a_release_with_every_migration_says_nothing_of_them(world):
    world.release("h1", 2, "previous", files=[f"{MIGRATIONS}/0001_initial.py"])
    world.release("h1", 3, "active", files=[f"{MIGRATIONS}/0001_initial.py"])
    world.rollback()
    assert store.current_number(world.root()) == 2
    assert not [line for line in world.said if "migrations" in line]


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    """h1 and h2 on v3, whose previous releases differ: v2 on h1, v1 on h2 (v2 failed there)."""
    w = connected(World(tmp_path, hosts=("h1", "h2"), default_target="fleet"), monkeypatch)
    for host, states in (("h1", ("good", "previous")), ("h2", ("previous", "failed"))):
        w.release(host, 1, states[0])
        w.release(host, 2, states[1])
        w.release(host, 3, "active")
    return w


def test_a_fleet_rollback_asks_for_to_when_the_hosts_previous_releases_differ(fleet):
    with pytest.raises(UsageError) as exc:
        fleet.rollback()
    assert exc.value.message.splitlines()[0] == (
        "fleet rollback stopped at choose: the hosts' previous releases differ (h1: v2, h2: v1)")
    assert exc.value.hint == "roll them all to one release with --to vN"
    for h in ("h1", "h2"):   # nothing changed, nothing left locked
        assert store.current_number(fleet.root(h)) == 3 and hostlock.holder(fleet.root(h)) is None


def test_a_fleet_rollback_with_to_takes_every_host_there(fleet):
    fleet.rollback(to=1)
    assert [store.current_number(fleet.root(h)) for h in ("h1", "h2")] == [1, 1]


# --- restore ----------------------------------------------------------------------------------------

NAME = "demo-20260102T030405Z-v3.dump"


def test_restore_refuses_before_any_change_when_a_host_lacks_the_backup(fleet, capsys):
    Path(fleet.root("h1"), "shared/backups", NAME).write_bytes(b"dump")
    assert refused(restore, backup=NAME, yes=True) == 2
    err = capsys.readouterr().err
    assert f"no backup '{NAME}'" in err and "h2" in err
    assert [r.log for r in fleet.remotes.values()] == [["backups"], ["backups"]]   # no restore call anywhere


def test_restore_latest_must_find_a_backup_on_every_host(fleet, capsys):
    Path(fleet.root("h1"), "shared/backups", NAME).write_bytes(b"dump")
    assert refused(restore, backup="latest", yes=True) == 2
    assert "there: none" in capsys.readouterr().err
    assert [r.log for r in fleet.remotes.values()] == [["backups"], ["backups"]]


# --- the host program's cache ---------------------------------------------------------------------

def test_the_host_program_cache_drops_copies_unwritten_for_30_days(tmp_path):
    home = tmp_path / "home"
    cache = home / ".cache" / "ayna-fab"
    cache.mkdir(parents=True)
    now = time.time()
    aged = {"program-old.z": 31, ".program-old.z.123": 31, "program-recent.z": 29, "notes.txt": 40}
    for name, days in aged.items():
        (cache / name).write_bytes(b"x")
        os.utime(cache / name, (now - days * 86400, now - days * 86400))
    lay = Layout(str(tmp_path / "base"), "demo", "production")
    os.makedirs(lay.releases)
    project = Project(name="demo", source=None, port_base=8130, services=("web",), env="production")
    p = subprocess.run(["bash", "-c", cmd.plan(lay, project, None).script], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, HOME=str(home)))
    assert p.returncode == 0, p.stderr
    assert sorted(x.name for x in cache.iterdir()) == sorted(
        ["program-recent.z", "notes.txt", f"program-{hostcall._program()[1]}.z"])


# --- fab init --write --------------------------------------------------------------------------------

def django_project(path: Path) -> Path:
    """A project `fab init` makes a loadable entry for."""
    (path / "shop").mkdir(parents=True)
    (path / "pyproject.toml").write_text('[project]\nname = "shop"\n')
    (path / "manage.py").write_text('import os\nos.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")\n')
    (path / "shop" / "settings.py").write_text('WSGI_APPLICATION = "shop.wsgi.application"\n')
    return path


@pytest.fixture
def inventory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    django_project(tmp_path / "shop")
    hosts_file = tmp_path / "hosts.toml"
    monkeypatch.setenv(config.ENV_VAR, str(hosts_file))
    return hosts_file


def test_init_puts_hosts_toml_back_when_the_edited_file_would_not_load(inventory):
    before = '[hosts.h1]\nhostname = "127.0.0.1"   # as the person wrote it\nprojects = []\n'
    inventory.write_text(before)
    assert refused(init, "shop", write=True, host="h2", hostname="not a host!") == 2
    assert inventory.read_text() == before
    assert not (inventory.parent / "shop.env").exists()


def test_init_removes_the_hosts_toml_it_made_when_it_would_not_load(inventory):
    assert refused(init, "shop", write=True, host="h2", hostname="not a host!") == 2
    assert not inventory.exists() and not (inventory.parent / "shop.env").exists()


def test_init_keeps_an_edited_hosts_toml_that_loads(inventory):
    inventory.write_text('[hosts.h1]\nhostname = "127.0.0.1"\nprojects = []\n')
    init(Context(), "shop", write=True, host="h2", hostname="127.0.0.2")
    assert "shop" in config.load(inventory).projects and (inventory.parent / "shop.env").exists()
