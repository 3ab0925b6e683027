"""Hostile or odd input is refused before anything remote, or handled exactly: committed names
that collide with a release's own, file names git or the manifest could misread, any number of
deleted files, the admin key, a sudoers drop-in that would break sudo."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import tarfile
import io
from pathlib import Path

import pytest

from ayna_fab.commands import hostcalls as hostcmd
from ayna_fab.commands import setup as setupcmd
from ayna_fab.config import model as config, targets
from ayna_fab.errors import UsageError
from ayna_fab.hostprog import calls, setupfiles
from ayna_fab.ops.gitsource import Source
from tests.prereqs import requires
from tests.unit.test_recovery import World, git

REPO = Path(__file__).resolve().parents[2]


# --- the admin key ----------------------------------------------------------------------------------

KEYS = """\
[defaults]
identity_file = "keys/deploy"
admin_identity_file = "keys/admin"
[projects.uavcrew]
source = "../uavcrew"
env = "production"
[hosts.a]
hostname = "a.example.org"
projects = ["uavcrew"]
[hosts.b]
hostname = "b.example.org"
admin_identity_file = "/etc/ayna/b-admin"
projects = ["uavcrew"]
[hosts.c]
hostname = "c.example.org"
identity_file = "/etc/ayna/c-deploy"
projects = ["uavcrew"]
"""


def test_setup_logs_in_with_the_admin_key_and_deploys_with_the_deploy_key(tmp_path):
    (tmp_path / "hosts.toml").write_text(KEYS)
    cfg = config.load(tmp_path / "hosts.toml")
    a, b, c = cfg.hosts["a"], cfg.hosts["b"], cfg.hosts["c"]
    assert targets.endpoint(cfg, a).identity_file == tmp_path / "keys/deploy"
    assert targets.endpoint(cfg, a, admin=True).identity_file == tmp_path / "keys/admin"
    assert targets.endpoint(cfg, a, admin=True).user == "root" and targets.endpoint(cfg, a).user == "adonis"
    assert targets.endpoint(cfg, b, admin=True).identity_file == Path("/etc/ayna/b-admin")
    assert targets.endpoint(cfg, b).identity_file == tmp_path / "keys/deploy"
    assert targets.endpoint(cfg, c).identity_file == Path("/etc/ayna/c-deploy")
    assert targets.endpoint(cfg, c, admin=True).identity_file == tmp_path / "keys/admin"


def test_without_an_admin_key_setup_uses_identity_file(tmp_path):
    (tmp_path / "hosts.toml").write_text(KEYS.replace('admin_identity_file = "keys/admin"\n', ""))
    cfg = config.load(tmp_path / "hosts.toml")
    assert targets.endpoint(cfg, cfg.hosts["a"], admin=True).identity_file == tmp_path / "keys/deploy"


def test_only_setup_and_remove_ever_ask_for_the_admin_login():
    """Every other task connects as the deploy user: the admin key is loaded by setup, and by remove,
    which takes out what setup put in."""
    admin_logins = []
    for path in (REPO / "ayna_fab").rglob("*.py"):
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and any(k.arg == "admin" for k in node.keywords):
                    admin_logins.append(f"{path.relative_to(REPO)}:{fn.name}")
    assert sorted(admin_logins) == ["ayna_fab/cli/tasks/provisioning.py:setup", "ayna_fab/ops/teardown.py:run"]


def test_the_host_setup_page_documents_the_admin_key():
    page = (REPO / "docs" / "host-setup.md").read_text()
    assert "admin_identity_file" in page


# --- committed names ------------------------------------------------------------------------------

@pytest.fixture
def repo(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    (src / "app.py").write_text("x\n")
    git(src, "add", "-A")
    git(src, "commit", "-qm", "one")
    return src


def commit_file(src: Path, name: str | bytes, text: bytes = b"x\n") -> str:
    path = os.path.join(os.fsencode(src), os.fsencode(name))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(text)
    subprocess.run(["git", "-C", str(src), "add", "-A"], check=True)
    git(src, "commit", "-qm", "add")
    return git(src, "rev-parse", "HEAD")


@pytest.mark.parametrize("name,why", [
    ("media/.gitkeep", "the link to shared/media"), ("media", "the link to shared/media"),
    (".env", "the link to shared/.env.{env}"), (".venv/bin/python", "the release's virtualenv"),
    (".ayna-release.json", "the release's own records"), (".ayna-manifest", "the release's own records"),
    ("a\nb.py", "control character"), ("tab\there.py", "control character"),
    (b"caf\xe9.py", "not valid UTF-8")])
def test_a_commit_with_a_name_a_release_cannot_hold_is_refused_before_anything_remote(repo, name, why):
    commit_file(repo, name)
    with pytest.raises(UsageError) as err:
        Source.open(repo).resolve("HEAD")
    text = str(err.value)
    assert why in text and "git mv, or git rm --cached" in text and err.value.exit_code == 2
    assert text.count("\n") == 1       # the name is shown escaped, on one line


@pytest.mark.parametrize("name", [".env.example", "src/media/x.py", "docs/.env", ".envrc", "ayna-notes.md"])
def test_names_like_the_reserved_ones_are_fine(repo, name):
    commit_file(repo, name)
    Source.open(repo).resolve("HEAD")


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_the_archive_of_changed_files_holds_exactly_those_files(repo):
    """':foo' is pathspec magic, '-x' an option, 'a*' a glob, to git: here each is one file name."""
    names = [":foo", "-rf", "a*", "ab", "[x].py", "x.py", "sub/:bar", "b c.py"]
    for n in names:
        commit_file(repo, n, b"old\n")
    base = git(repo, "rev-parse", "HEAD")
    for n in (":foo", "-rf", "a*", "[x].py", "sub/:bar", "b c.py"):
        (repo / n).write_bytes(b"new " + n.encode() + b"\n")
    git(repo, "commit", "-qam", "change")
    src = Source.open(repo)
    head = src.resolve("HEAD")
    changed, deleted = src.changes(base, head)
    assert sorted(changed) == sorted([":foo", "-rf", "a*", "[x].py", "sub/:bar", "b c.py"]) and deleted == []
    got = members(src.archive(head, changed))
    assert got == {n: b"new " + n.encode() + b"\n" for n in changed}      # no 'ab', 'x.py': exactly these


def test_any_number_of_changed_files_fits(repo):
    """Names that add up to more than Linux takes in one command line (about 2 MiB)."""
    deep = "/".join(["d" * 200] * 3)
    for i in range(3500):
        p = repo / deep / f"{i:04d}-{'f' * 200}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(str(i))
    base = git(repo, "rev-parse", "HEAD")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    git(repo, "commit", "-qm", "many")
    src = Source.open(repo)
    changed, _ = src.changes(base, src.resolve("HEAD"))
    assert sum(len(n) + 1 for n in changed) > 2 * 1024 * 1024
    assert len(members(src.archive(git(repo, "rev-parse", "HEAD"), changed))) == 3500


def test_an_old_name_that_is_not_utf8_is_deleted_exactly(repo):
    commit_file(repo, b"caf\xe9.py")       # committed before this check existed: now it goes away
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "rm", "-q", os.fsdecode(b"caf\xe9.py"))
    git(repo, "commit", "-qm", "rm")
    src = Source.open(repo)
    _, deleted = src.changes(base, src.resolve("HEAD"))
    assert hostcmd.deleted_list(deleted) == b"caf\xe9.py\0"


# --- deploys, through the real host program (tests/fakehost.py) ------------------------------------

def files_of(release: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(release):
        for f in filenames:
            p = Path(dirpath, f)
            rel = str(p.relative_to(release))
            if not rel.startswith(".ayna-") and not p.is_symlink():
                out[rel] = p.read_bytes()
    return out


def test_a_deploy_that_moves_5000_files(tmp_path):
    w = World(tmp_path, hosts=("h1",))
    for i in range(5000):
        p = w.src / "data" / f"d{i % 50}" / f"file-{i:05d}-with-a-fairly-long-name.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{i}\n")
    git(w.src, "add", "-A")
    git(w.src, "commit", "-qm", "5000 files")
    w.deploy()
    git(w.src, "mv", "data", "moved")
    git(w.src, "commit", "-qm", "moved")
    op = w.deploy()
    assert w.current() == 2 and not w.locked() and op.targets[0].state.recorded
    files = files_of(Path(w.layout("h1").release(2)))
    assert sum(1 for n in files if n.startswith("moved/")) == 5000
    assert not any(n.startswith("data/") for n in files)
    assert files["moved/d7/file-00007-with-a-fairly-long-name.txt"] == b"7\n"
    assert not list(Path(w.layout("h1").releases).glob(".upload-*"))   # the upload and the list are gone


def test_a_changed_file_named_like_pathspec_magic_gets_its_new_content(tmp_path):
    w = World(tmp_path, hosts=("h1",))
    for n in (":foo", "-rf", "a*", "ab"):
        (w.src / n).write_text("old\n")
    git(w.src, "add", "-A")
    git(w.src, "commit", "-qm", "odd names")
    w.deploy()
    for n in (":foo", "-rf", "a*"):
        (w.src / n).write_text(f"new {n}\n")
    git(w.src, "commit", "-qam", "changed")
    w.deploy()
    files = files_of(Path(w.layout("h1").release(2)))
    assert {n: files[n] for n in (":foo", "-rf", "a*", "ab")} == {
        ":foo": b"new :foo\n", "-rf": b"new -rf\n", "a*": b"new a*\n", "ab": b"old\n"}


def test_a_host_whose_live_release_committed_media_recovers_once_it_is_removed(tmp_path):
    """A release made before media/ was refused lists media/.gitkeep; the next deploy neither copies
    it nor turns the shared link into a directory."""
    w = World(tmp_path, hosts=("h1",))
    w.deploy()
    rel = Path(w.layout("h1").release(1))
    (rel / ".ayna-manifest").write_text((rel / ".ayna-manifest").read_text() + "media/.gitkeep\n")
    w.commit("v = 2\n")
    w.deploy()
    new = Path(w.layout("h1").release(2))
    assert (new / "media").is_symlink() and "media/.gitkeep" not in (new / ".ayna-manifest").read_text()


# --- sudoers -----------------------------------------------------------------------------------------

@requires(os.geteuid() == 0, "install -o root needs root")
@pytest.mark.parametrize("existing", ["GOOD old rule\n", None])
def test_a_drop_in_that_breaks_the_whole_sudo_configuration_is_taken_back(tmp_path, existing):
    """Two projects' aliases would clash, say: the drop-in alone is valid, the whole configuration is
    not. The drop-in that was there before (or none) must be what stays."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    dropin = tmp_path / "ayna-demo"
    (bindir / "visudo").write_text(
        "#!/bin/sh\n"
        '[ "$2" = "-f" ] && exit 0\n'                       # the drop-in alone: fine
        f'grep -q BREAKS {dropin} 2>/dev/null && {{ echo "Duplicate Cmnd_Alias AYNA_DEMO" >&2; exit 1; }}\n'
        "exit 0\n")
    (bindir / "visudo").chmod(0o755)
    if existing:
        dropin.write_text(existing)
    script = setupcmd.install_sudoers(str(dropin), "Cmnd_Alias AYNA_DEMO = BREAKS\n").script
    p = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"})
    assert p.returncode == 1 and "was not installed" in p.stderr and "Duplicate Cmnd_Alias" in p.stderr
    assert "changed:" not in p.stdout
    if existing:
        assert dropin.read_text() == existing
    else:
        assert not dropin.exists()
    fine = setupcmd.install_sudoers(str(dropin), "Cmnd_Alias AYNA_DEMO = ok\n").script
    p = subprocess.run(["bash", "-c", fine], capture_output=True, text=True,
                       env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"})
    assert p.returncode == 0 and dropin.read_text() == "Cmnd_Alias AYNA_DEMO = ok\n"


@requires(os.geteuid() == 0, "a file of root's needs root")
@pytest.mark.parametrize("planted", ["symlink", "fifo", "directory link"])
def test_the_uv_config_replaces_a_planted_link_or_fifo_without_reading_through_it(tmp_path, planted):
    """uv.toml sits in the project's directory, where the deploy user may make names."""
    victim, victim_dir, path = tmp_path / "victim", tmp_path / "victim-dir", tmp_path / "uv.toml"
    victim.write_text("root's own\n")
    victim_dir.mkdir()
    if planted == "symlink":
        path.symlink_to(victim)
    elif planted == "directory link":
        path.symlink_to(victim_dir)
    else:
        os.mkfifo(path)
    res = setupfiles.uv_config(calls.UvConfig(path=str(path), text="[pip]\n"))
    assert res["changes"] == [f"wrote {path} (uv: the package index settings of hosts.toml)"]
    assert victim.read_text() == "root's own\n" and list(victim_dir.iterdir()) == []
    assert not path.is_symlink() and path.read_text() == "[pip]\n"
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o644)
    assert setupfiles.uv_config(calls.UvConfig(path=str(path), text="[pip]\n"))["changes"] == []
    path.unlink()
    path.symlink_to(victim_dir)
    assert setupfiles.uv_config(calls.UvConfig(path=str(path), text=None))["changes"] == [
        f"removed {path} (hosts.toml sets no package index)"]
    assert not os.path.lexists(path) and victim_dir.is_dir()
