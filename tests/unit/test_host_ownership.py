"""What root and systemd read on the deploy user's behalf stays root's: the layout's owners, setup's
conversion of an existing host, and what the deploy user can and cannot do there afterwards.

The file-system tests run setup's file work as root against a temporary tree, then act as a made-up
deploy uid in a child process (as the deploy user, or code in its app, would on a host).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import types
from pathlib import Path

import pytest

from ayna_fab.commands import setup as setup_cmd
from ayna_fab.config import model as config
from ayna_fab.config.layout import Layout
from ayna_fab.hostprog import calls, setupfiles
from ayna_fab.provision import conformance, sudoers
from tests.prereqs import requires

REPO = Path(__file__).resolve().parents[2]
UID = GID = 4243
USER = "deployer"
as_root = requires(os.geteuid() == 0, "chown and setuid need root")


def test_no_directory_on_the_way_to_the_env_file_is_the_deploy_users():
    lay = Layout("/opt/ayna", "demo", "production")
    owners = {path: (owner, group, mode) for path, owner, group, mode in lay.dirs(USER)}
    ancestors = [lay.base_dir, lay.root, lay.shared]
    assert os.path.dirname(lay.env_file) == lay.shared
    assert all(owners[p][0] == "root" for p in ancestors)
    # where the deploy user must make names, it may, but the sticky bit keeps root's names root's
    assert owners[lay.root] == ("root", USER, "1775") and owners[lay.shared] == ("root", USER, "1770")
    for p in (lay.releases, lay.logs, f"{lay.shared}/media", f"{lay.shared}/backups", lay.uv_cache):
        assert owners[p][:2] == (USER, USER), p


@pytest.fixture
def old_host(monkeypatch):
    """A host set up before: the project's root, shared/ and the env file all the deploy user's
    (under a directory the deploy uid may walk through, unlike pytest's own)."""
    monkeypatch.setattr(setupfiles, "_ids", lambda user: (0, 0) if user == "root" else (UID, GID))
    tmp_path = Path(tempfile.mkdtemp(prefix="ayna-ownership-"))
    yield from _old_host(tmp_path)
    shutil.rmtree(tmp_path)


def _old_host(tmp_path):
    lay = Layout(str(tmp_path / "opt" / "ayna"), "demo", "production")
    for d in (f"{lay.shared}/media", f"{lay.shared}/backups", lay.logs, lay.releases, lay.uv_cache):
        os.makedirs(d)
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "opt", 0o755)
    for d in (lay.root, lay.shared, lay.releases, lay.logs, f"{lay.shared}/media", f"{lay.shared}/backups",
              lay.uv_cache):
        os.chown(d, UID, GID)
    Path(lay.env_file).write_text("SECRET_KEY=s\n")
    os.chown(lay.env_file, UID, GID)
    os.chmod(lay.env_file, 0o600)
    victim = tmp_path / "root-only"
    victim.write_text("ROOT_ONLY_TOKEN=never-for-the-deploy-user\n")
    victim.chmod(0o600)
    yield types.SimpleNamespace(lay=lay, victim=victim, tmp=tmp_path)


def setup_files(h):
    changes = setupfiles.dirs(calls.Dirs(dirs=[list(d) for d in h.lay.dirs(USER)]))["changes"]
    res = setupfiles.env_file(calls.EnvFile(path=h.lay.env_file, user=USER, upload=False, replace=False,
                                            database_url=False))
    return changes + res["changes"]


def as_deploy_user(action) -> str:
    """action() run as the deploy uid in a child process: 'ok' or the error's name."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(GID)
            os.setuid(UID)
            action()
            out = "ok"
        except OSError as exc:
            out = type(exc).__name__
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        return f.read()


def owner_mode(path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@as_root
def test_setup_makes_the_env_files_way_roots_once_and_the_deploy_user_cannot_swap_it(old_host):
    lay = old_host.lay
    changes = setup_files(old_host)
    assert f"fixed owner/mode of {lay.root}" in changes and f"fixed owner/mode of {lay.shared}" in changes
    assert f"fixed owner/mode of {lay.env_file}" in changes
    assert owner_mode(lay.root) == (0, GID, 0o1775) and owner_mode(lay.shared) == (0, GID, 0o1770)
    assert owner_mode(lay.env_file) == (0, GID, 0o640)
    assert setup_files(old_host) == []        # converted once: the second run changes nothing

    def link_over_env():
        os.symlink(old_host.victim, f"{lay.shared}/.link")
        os.rename(f"{lay.shared}/.link", lay.env_file)

    for attack in (lambda: os.rename(lay.shared, f"{lay.root}/shared-aside"),
                   lambda: os.unlink(lay.env_file), link_over_env,
                   lambda: os.rename(lay.root, f"{lay.base_dir}/aside"),
                   lambda: open(lay.env_file, "a")):
        assert as_deploy_user(attack) == "PermissionError"
    assert os.path.isfile(lay.env_file) and not os.path.islink(lay.env_file)
    assert as_deploy_user(lambda: open(lay.env_file).read()) == "ok"          # its group reads it

    def what_deploys_write():
        # the lock, the journal and the venv link (replaced at every flip) in the project's root,
        # a release, a log line, SQLite's database and journal in shared/, a backup
        for name in (".deploy-lock", "activation.json", "activation.json.lock"):
            Path(lay.root, name).write_text("x")
        os.symlink("releases/current/.venv", f"{lay.root}/venv.tmp")
        os.replace(f"{lay.root}/venv.tmp", lay.venv)
        os.symlink("releases/current/.venv", f"{lay.root}/venv.tmp")
        os.replace(f"{lay.root}/venv.tmp", lay.venv)
        os.mkdir(f"{lay.releases}/v1")
        Path(lay.logs, "deploys.jsonl").write_text("{}\n")
        for name in ("db.sqlite3", "db.sqlite3-journal"):
            Path(lay.shared, name).write_text("x")
        os.unlink(f"{lay.shared}/db.sqlite3-journal")
        Path(lay.shared, "backups", "demo.dump").write_text("x")

    assert as_deploy_user(what_deploys_write) == "ok"


@as_root
def test_a_link_planted_at_the_env_file_before_the_conversion_is_refused(old_host):
    """shared/ was the deploy user's: a link it left there is never followed, even once shared/ is root's."""
    os.unlink(old_host.lay.env_file)
    os.symlink(old_host.victim, old_host.lay.env_file)
    setupfiles.dirs(calls.Dirs(dirs=[list(d) for d in old_host.lay.dirs(USER)]))
    with pytest.raises(setupfiles.Refused) as err:
        setupfiles.env_file(calls.EnvFile(path=old_host.lay.env_file, user=USER, upload=False, replace=False,
                                          database_url=False))
    assert err.value.code == "unsafe-path"
    assert owner_mode(old_host.victim) == (0, 0, 0o600)


def facts_of(cfg, project, user, dirs, env):
    return {"whoami": user, "user": {"exists": True, "groups": ["systemd-journal"]}, "units": {}, "listening": [],
            "sudo": "", "dirs": dirs, "env": {"stat": env, "text": None}}


def test_validate_wants_the_new_owners():
    cfg = config.load(REPO / "hosts.toml")
    host, project = cfg.hosts["sandbox1"], cfg.projects["uavcrew"]
    lay = Layout.of(cfg, project)
    old = {path: {"owner": "root" if path == lay.base_dir else host.user,
                  "group": "root" if path == lay.base_dir else host.user, "mode": mode.lstrip("1"), "dir": True}
           for path, _, _, mode in lay.dirs(host.user)}
    checks = conformance.host_checks(cfg, host, project, facts_of(
        cfg, project, host.user, old, {"owner": host.user, "group": host.user, "mode": "600", "dir": False}))
    text = "\n".join(f"{c.title}: {'; '.join(c.problems)}" for c in checks)
    assert f"{lay.shared} is {host.user}:{host.user} 770, expected root:{host.user} 1770" in text
    assert f"{lay.root} is {host.user}:{host.user} 775, expected root:{host.user} 1775" in text
    assert f"{lay.env_file} is {host.user}:{host.user} 600, expected root:{host.user} 640" in text
    assert f"{host.user} is in systemd-journal: it reads every service's logs" in text
    assert f"{host.user} may not read its units' logs with sudo /usr/local/lib/ayna-fab/journal-uavcrew" in text


# --- logs: the project's units only ---------------------------------------------------------------

def test_setup_takes_the_deploy_user_out_of_the_journal_group():
    script = setup_cmd.ensure_user("adonis").script
    assert "usermod -aG systemd-journal" not in script
    assert "gpasswd -d adonis systemd-journal" in script


def test_the_deploy_users_sudo_rule_names_its_projects_journal_reader():
    text = sudoers.render("uavcrew", "adonis", ["uavcrew-web.service"])
    assert sudoers.journal_reader("uavcrew") == "/usr/local/lib/ayna-fab/journal-uavcrew"
    assert "/usr/local/lib/ayna-fab/journal-uavcrew" in text and "journalctl" not in text


@pytest.fixture
def reader(tmp_path):
    """The journal reader as setup installs it, with a journalctl that prints what it was given."""
    fake = tmp_path / "journalctl"
    fake.write_text("#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done\n")
    fake.chmod(0o755)
    path = tmp_path / "journal-uavcrew"
    path.write_text(sudoers.render_journal_reader("uavcrew", ["uavcrew-web.service", "uavcrew-beat.service"],
                                                  journalctl=str(fake)))
    path.chmod(0o755)

    def run(*args):
        p = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=20)
        return p.returncode, p.stdout.splitlines(), p.stderr
    return run


def test_the_journal_reader_passes_only_its_projects_units_and_fixed_options(reader):
    code, argv, _ = reader("--unit=uavcrew-web.service", "--since=2 hours ago", "--lines=5", "--follow")
    assert code == 0 and argv == ["--no-pager", "--quiet", "--output=short-iso", "--since=2 hours ago",
                                  "--lines=5", "--follow", "--unit=uavcrew-web.service"]
    for bad in (["--unit=ssh.service"], ["--unit=uavcrew-web.service", "--unit=sudo.service"],
                ["--unit=uavcrew-web.service", "-u", "ssh"], ["--unit=uavcrew-web.service", "--file=/etc/shadow"],
                ["--unit=uavcrew-web.service", "--since=$(id)"], ["--unit=uavcrew-web.service", "--lines=1x"],
                ["--unit=uavcrew-web.service", "--pager"], ["--unit=uavcrew-web.service", "--directory=/"],
                ["--since=today"], []):
        code, argv, err = reader(*bad)
        assert code != 0 and argv == [], bad
