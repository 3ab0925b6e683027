"""Setup's file work as root (hostprog/setupfiles.py): links, hard links and FIFOs the deploy user plants
are refused, and nothing outside the project is read, handed over or written.

Runs the host program as root against a temporary tree: a project root owned by a made-up deploy
uid (so root does not own the directories it walks, as on a host), and "victims" owned by root
that a planted link points at.
"""

from __future__ import annotations

import os
import stat
import subprocess
import types

import pytest

from ayna_fab.commands import hostcalls as hostcmd
from ayna_fab.hostprog import calls, setupfiles
from ayna_fab.hostprog.wire import Refused
from ayna_fab.remote import hostcall
from ayna_fab.remote.transport import Result
from tests.prereqs import requires

pytestmark = requires(os.geteuid() == 0, "chown needs root")

UID = GID = 4242          # the deploy user: no passwd entry needed, the kernel takes any number
USER = "deployer"
ENV = "SECRET_KEY=from-the-laptop\nDATABASE_URL=postgresql://u:p@localhost/app\nA=1\n"
VICTIM_TEXT = "root:$y$hash-that-must-never-show:19000:0:99999:7:::\n"


@pytest.fixture
def host(tmp_path, monkeypatch):
    """base (root 755) / project (the deploy user's) with shared/ and logs/, and root's victims."""
    monkeypatch.setattr(setupfiles, "_ids", lambda user: (UID, GID))
    base = tmp_path / "opt" / "ayna"
    root = base / "demo"
    for d in (root / "shared" / "media", root / "logs", root / "releases"):
        d.mkdir(parents=True)
    for d, mode in ((root, 0o755), (root / "shared", 0o750), (root / "shared" / "media", 0o750),
                    (root / "logs", 0o750), (root / "releases", 0o755)):
        os.chown(d, UID, GID)
        d.chmod(mode)
    base.chmod(0o755)
    victim = tmp_path / "victim"
    victim.write_text(VICTIM_TEXT)
    victim.chmod(0o600)
    victim_dir = tmp_path / "victim-dir"
    victim_dir.mkdir(mode=0o700)
    return types.SimpleNamespace(base=base, root=root, env=root / "shared" / ".env.production",
                                 victim=victim, victim_dir=victim_dir, tmp=tmp_path)


def layout_dirs(h):
    r = str(h.root)
    return [(str(h.base), "root", "root", "755"), (r, USER, USER, "755"), (f"{r}/releases", USER, USER, "755"),
            (f"{r}/shared", USER, USER, "750"), (f"{r}/shared/media", USER, USER, "750"),
            (f"{r}/logs", USER, USER, "750")]


def owner_mode(path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def dirs(h, monkeypatch):
    monkeypatch.setattr(setupfiles, "_ids", lambda user: (0, 0) if user == "root" else (UID, GID))
    return setupfiles.dirs(calls.Dirs(dirs=[list(d) for d in layout_dirs(h)]))


def env_call(h, text=ENV, replace=False, database_url=False):
    return setupfiles_call(hostcmd.setup_env_file(str(h.env), USER, upload=text is not None, replace=replace,
                                                  database_url=database_url), stdin=text)


def setupfiles_call(command, stdin=None):
    """Through the real transport (bootstrap, bash, stdin), as setup runs it; _ids is patched in the
    program by naming the deploy user by number."""
    script = command.script.replace(hostcall.bootstrap(), hostcall.bootstrap().replace(
        "sys.exit(main.run(sys.argv[1:]))",
        f"from {hostcall.HOST_NAME} import setupfiles as _s; _s._ids = lambda u: ({UID}, {GID})\n"
        "sys.exit(main.run(sys.argv[1:]))"))
    p = subprocess.run(["bash", "-c", script], input=stdin, capture_output=True, text=True, timeout=60)
    return hostcall.parse(Result(p.returncode, p.stdout, p.stderr), host="local", step=command.step), p.stdout


# --- directories ----------------------------------------------------------------------------------

def test_directories_are_made_and_fixed_and_a_second_run_changes_nothing(host, monkeypatch):
    (host.root / "logs").rmdir()
    os.chown(host.root / "shared" / "media", 0, 0)
    res = dirs(host, monkeypatch)
    assert res["changes"] == [f"fixed owner/mode of {host.root}/shared/media", f"created {host.root}/logs"]
    assert owner_mode(host.root / "logs") == (UID, GID, 0o750)
    assert owner_mode(host.root / "shared" / "media") == (UID, GID, 0o750)
    assert dirs(host, monkeypatch)["changes"] == []


@pytest.mark.parametrize("planted", ["logs", "shared/media", "shared", "releases"])
def test_a_planted_directory_link_is_refused_and_its_target_untouched(host, monkeypatch, planted):
    path = host.root / planted
    os.rename(path, host.tmp / "moved-aside")
    path.symlink_to(host.victim_dir)
    before = owner_mode(host.victim_dir)
    with pytest.raises(Refused) as err:
        dirs(host, monkeypatch)
    assert err.value.code == "unsafe-path"
    assert f"{path} is a symbolic link (to '{host.victim_dir}')" in err.value.detail
    assert owner_mode(host.victim_dir) == before == (0, 0, 0o700)


def test_a_link_only_root_could_have_made_is_followed(host, monkeypatch):
    """base_dir through a symlink in a root-owned directory (an admin's choice) still works."""
    real = host.tmp / "srv"
    real.mkdir()
    (host.tmp / "opt-link").symlink_to(real)
    monkeypatch.setattr(setupfiles, "_ids", lambda user: (0, 0) if user == "root" else (UID, GID))
    res = setupfiles.dirs(calls.Dirs(dirs=[[str(host.tmp / "opt-link" / "ayna"), "root", "root", "755"],
                                           [str(host.tmp / "opt-link" / "ayna" / "p"), USER, USER, "755"]]))
    assert len(res["changes"]) == 2 and owner_mode(real / "ayna" / "p") == (UID, GID, 0o755)


# --- the env file ------------------------------------------------------------------------------------

def test_the_env_file_is_uploaded_private_and_only_keys_come_back(host):
    res, _ = env_call(host)
    assert res["written"] and not res["existed"]
    assert host.env.read_text() == ENV and owner_mode(host.env) == (0, GID, 0o640)
    assert env_call(host)[0] == {"existed": True, "differs": False, "keys": None, "changes": []}
    changed = ENV.replace("A=1", "A=2") + "B=3\n"
    res, out = env_call(host, changed)
    assert (res["differs"], res.get("written"), res["keys"]) == (True, None, {"added": ["B"], "removed": [],
                                                                                "changed": ["A"]})
    assert host.env.read_text() == ENV and "from-the-laptop" not in out
    res, out = env_call(host, changed, replace=True)
    assert res["written"] and host.env.read_text() == changed and owner_mode(host.env) == (0, GID, 0o640)
    assert not [p for p in host.env.parent.iterdir() if ".ayna-" in p.name]   # no temporary file left


def test_a_wrong_mode_is_fixed_through_the_file_itself(host):
    env_call(host)
    os.chown(host.env, 0, 0)
    host.env.chmod(0o644)
    res, _ = env_call(host, None)
    assert res["changes"] == [f"fixed owner/mode of {host.env}"] and owner_mode(host.env) == (0, GID, 0o640)


@pytest.mark.parametrize("plant", ["symlink", "hard link", "fifo", "foreign owner", "symlinked shared"])
@pytest.mark.parametrize("upload", [True, False], ids=["upload", "no env_file"])
def test_a_planted_env_file_is_refused_and_nothing_of_its_target_shows(host, plant, upload):
    if plant == "symlink":
        host.env.symlink_to(host.victim)
    elif plant == "hard link":   # (protected_hardlinks stops the deploy user; root makes it here)
        os.link(host.victim, host.env)
    elif plant == "fifo":
        os.mkfifo(host.env)
    elif plant == "foreign owner":
        host.env.write_text(VICTIM_TEXT)
        os.chown(host.env, 31337, 31337)
    else:
        os.rename(host.root / "shared", host.tmp / "shared-aside")
        (host.root / "shared").symlink_to(host.tmp)
        (host.tmp / ".env.production").symlink_to(host.victim)   # would be reached through the link
    before = owner_mode(host.victim), host.victim.read_text()
    res, out = env_call(host, ENV if upload else None, replace=True, database_url=True)
    assert res["error"] == "unsafe-path", res
    assert "hash-that-must-never-show" not in out and "database_url" not in res
    assert (owner_mode(host.victim), host.victim.read_text()) == before
    if plant in ("symlink", "symlinked shared"):
        assert os.path.islink(host.env if plant == "symlink" else host.root / "shared")


def test_the_database_url_is_answered_only_when_asked(host):
    env_call(host)
    assert "database_url" not in env_call(host, None)[0]
    assert env_call(host, None, database_url=True)[0]["database_url"] == "postgresql://u:p@localhost/app"


# --- the deploy user's authorized_keys ------------------------------------------------------------

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake deploy@laptop"


@pytest.fixture
def home(host, monkeypatch):
    h = host.tmp / "home" / USER
    h.mkdir(parents=True)
    os.chown(h, UID, GID)
    monkeypatch.setattr(setupfiles.pwd, "getpwnam",
                        lambda user: types.SimpleNamespace(pw_uid=UID, pw_gid=GID, pw_dir=str(h)))
    return h


def authorize():
    return setupfiles.authorize_key(calls.AuthorizeKey(user=USER, key=KEY))


def test_the_deploy_key_is_authorized_once(home):
    assert authorize()["changes"] == [f"authorized the deploy key for {USER}"]
    assert authorize()["changes"] == []
    auth = home / ".ssh" / "authorized_keys"
    assert auth.read_text() == KEY + "\n"
    assert owner_mode(home / ".ssh") == (UID, GID, 0o700) and owner_mode(auth) == (UID, GID, 0o600)


@pytest.mark.parametrize("planted", [".ssh", ".ssh/authorized_keys"])
def test_a_planted_ssh_link_is_refused(home, host, planted):
    if planted != ".ssh":
        (home / ".ssh").mkdir()
    target = host.victim_dir if planted == ".ssh" else host.victim
    (home / planted).symlink_to(target)
    before = owner_mode(target), (host.victim.read_text())
    with pytest.raises(Refused) as err:
        authorize()
    assert "is a symbolic link" in err.value.detail and str(home / planted) in err.value.detail
    assert (owner_mode(target), host.victim.read_text()) == before
    assert KEY not in host.victim.read_text()
