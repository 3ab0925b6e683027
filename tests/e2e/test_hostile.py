"""Faults and hostile input on real sandbox hosts: links the deploy user plants for setup, the admin
key, a deploy that moves 5,000 files, file names git could misread, releases that cannot change one
another, a DATABASE_URL password that must never show, a host key of another type.

Runs on set-up hosts (after test_host_setup); the deploys use a repository of their own, so the
module works after the deploy stories too.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import paramiko
import pytest

from ayna_fab.errors import UsageError
from ayna_fab.remote import ssh
from tests.e2e.conftest import fab, write_inventory
from tests.e2e.test_deploy import Repo

pytestmark = pytest.mark.e2e
ROOT = "/opt/ayna/uavcrew"
HOME = "/home/adonis"


@pytest.fixture(scope="module")
def inventory(sandbox, first_setup, tmp_path_factory):
    assert all(r.returncode == 0 for r in first_setup), [r.stderr for r in first_setup]
    return write_inventory(tmp_path_factory.mktemp("hostile") / "hosts.toml", sandbox)


SHADOW_LINE = re.compile(r"\b[a-z_][a-z0-9_-]*:[^:\s]*:[0-9]*:[0-9]*:[0-9]*:")   # user:hash:lastchg:min:max:


def facts(sandbox, index: int, path: str) -> str:
    """Owner, mode and content hash of what a link would have reached: none may change."""
    return sandbox.check(index, f"stat -c '%U:%G %a %i' {path}; if [ -f {path} ]; then sha256sum {path}; "
                                f"else ls -la {path} | sha256sum; fi")


# --- 3. setup follows no link the deploy user planted -------------------------------------------------

# (what, as the deploy user, the path setup meets, what the link would have reached)
PLANTS = [
    ("logs -> /etc", f"mv {ROOT}/logs {ROOT}/logs.aside && ln -s /etc {ROOT}/logs", f"{ROOT}/logs", "/etc"),
    ("media -> /root", f"mv {ROOT}/shared/media {ROOT}/shared/media.aside && ln -s /root {ROOT}/shared/media",
     f"{ROOT}/shared/media", "/root"),
    ("~/.ssh -> /root/.ssh", f"mv {HOME}/.ssh {HOME}/.ssh.aside && ln -s /root/.ssh {HOME}/.ssh", f"{HOME}/.ssh",
     "/root/.ssh/authorized_keys"),
    ("authorized_keys -> root's", f"mv {HOME}/.ssh/authorized_keys {HOME}/.ssh/ak.aside && "
     f"ln -s /root/.ssh/authorized_keys {HOME}/.ssh/authorized_keys", f"{HOME}/.ssh/authorized_keys",
     "/root/.ssh/authorized_keys"),
]
UNDO = (f"cd /; for p in {ROOT}/shared/.env.production {ROOT}/logs {ROOT}/shared/media {ROOT}/shared {HOME}/.ssh "
        f"{HOME}/.ssh/authorized_keys; do [ -L $p ] && rm $p; done; "
        f"[ -d {ROOT}/shared.aside ] && mv {ROOT}/shared.aside {ROOT}/shared; "
        f"[ -d {ROOT}/logs.aside ] && mv {ROOT}/logs.aside {ROOT}/logs; "
        f"[ -d {ROOT}/shared/media.aside ] && mv {ROOT}/shared/media.aside {ROOT}/shared/media; "
        f"[ -d {HOME}/.ssh.aside ] && mv {HOME}/.ssh.aside {HOME}/.ssh; "
        f"[ -f {HOME}/.ssh/ak.aside ] && mv {HOME}/.ssh/ak.aside {HOME}/.ssh/authorized_keys; "
        f"[ -f {ROOT}/shared/.env.production ] || cp {ROOT}/shared/.env.aside {ROOT}/shared/.env.production; "
        f"rm -f {ROOT}/shared/.env.aside; true")


@pytest.mark.parametrize("what,plant,path,reached", PLANTS, ids=[p[0] for p in PLANTS])
def test_setup_refuses_a_link_the_deploy_user_planted(sandbox, inventory, what, plant, path, reached):
    before = facts(sandbox, 1, reached)
    sandbox.check(1, f"cp -p {ROOT}/shared/.env.production {ROOT}/shared/.env.aside")
    try:
        sandbox.check(1, f"runuser -u adonis -- sh -c {shlex.quote(plant)}")  # the deploy user's own doing
        r = fab("-H", "sandbox2", "setup", hosts_file=inventory)
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"{path} is a symbolic link" in r.stderr and "[sandbox2]" in r.stderr, r.stderr
        assert "remove it" in r.stderr
        assert facts(sandbox, 1, reached) == before
        assert not SHADOW_LINE.search(r.stdout + r.stderr)
        assert sandbox.check(1, f"stat -c %U {path}").strip() == "adonis"     # the link itself, untouched
    finally:
        sandbox.check(1, UNDO)


# On the way to the env file, which systemd reads as root, the deploy user cannot plant at all: every
# directory there is root's (sticky, group-writable), so these fail as the deploy user's own doing.
CANNOT_PLANT = [
    ("env file -> /etc/shadow", f"rm {ROOT}/shared/.env.production && ln -s /etc/shadow {ROOT}/shared/.env.production",
     f"{ROOT}/shared/.env.production"),
    ("shared -> /etc", f"mv {ROOT}/shared {ROOT}/shared.aside && ln -s /etc {ROOT}/shared", f"{ROOT}/shared"),
]


@pytest.mark.parametrize("what,plant,path", CANNOT_PLANT, ids=[p[0] for p in CANNOT_PLANT])
def test_the_deploy_user_cannot_plant_a_link_on_the_way_to_the_env_file(sandbox, inventory, what, plant, path):
    before = facts(sandbox, 1, path)
    try:
        code, _, err = sandbox.run(1, f"runuser -u adonis -- sh -c {shlex.quote(plant)}")
        assert code != 0 and "Operation not permitted" in err, err
        assert facts(sandbox, 1, path) == before and sandbox.check(1, f"[ ! -L {path} ] && echo no-link") == "no-link\n"
        r = fab("-H", "sandbox2", "setup", hosts_file=inventory)
        assert r.returncode == 0 and "symbolic link" not in r.stdout + r.stderr, r.stdout + r.stderr
    finally:
        sandbox.check(1, UNDO)


def test_setup_refuses_a_hard_link_to_another_file(sandbox, inventory):
    # The deploy user cannot make one where fs.protected_hardlinks is on; root plants it here.
    sandbox.check(1, f"cp -p {ROOT}/shared/.env.production {ROOT}/shared/.env.aside && "
                     f"rm {ROOT}/shared/.env.production && ln /etc/shadow {ROOT}/shared/.env.production")
    before = facts(sandbox, 1, "/etc/shadow")
    try:
        r = fab("-H", "sandbox2", "setup", hosts_file=inventory)
        assert r.returncode == 1 and "has 2 hard links" in r.stderr, r.stdout + r.stderr
        assert facts(sandbox, 1, "/etc/shadow") == before and not SHADOW_LINE.search(r.stdout + r.stderr)
    finally:
        sandbox.check(1, f"rm -f {ROOT}/shared/.env.production; {UNDO}")


def test_setup_is_whole_again_once_the_links_are_gone(sandbox, inventory):
    r = fab("-H", "sandbox2", "setup", hosts_file=inventory)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sandbox.check(1, f"stat -c '%U:%G %a' {ROOT}/shared/.env.production {ROOT}/logs {HOME}/.ssh "
                            f"{HOME}/.ssh/authorized_keys").split() == [
        "root:adonis", "640", "adonis:adonis", "750", "adonis:adonis", "700", "adonis:adonis", "600"]
    assert fab("-H", "sandbox2", "validate", hosts_file=inventory).returncode == 0


# --- 4. the admin key logs in as root for setup; the deploy key cannot ---------------------------------

def test_setup_uses_the_admin_key_and_authorizes_only_the_deploy_key(sandbox, tmp_path):
    deploy_key = tmp_path / "deploy_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy-only", "-f", str(deploy_key)],
                   check=True)
    inv = write_inventory(tmp_path / "hosts.toml", sandbox)
    text = inv.read_text().replace(f'identity_file = "{sandbox.settings.key_path}"',
                                   f'identity_file = "{deploy_key}"\n'
                                   f'admin_identity_file = "{sandbox.settings.key_path}"')
    inv.write_text(text)
    r = fab("-H", "sandbox2", "setup", hosts_file=inv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "authorized the deploy key for adonis" in r.stdout
    pub = deploy_key.with_suffix(".pub").read_text().split()[1]
    assert pub in sandbox.check(1, f"cat {HOME}/.ssh/authorized_keys")
    assert pub not in sandbox.check(1, "cat /root/.ssh/authorized_keys")
    assert fab("-H", "sandbox2", "validate", hosts_file=inv).returncode == 0     # deploys log in with it
    as_root = ssh.Endpoint(name="sandbox2", hostname="127.0.0.1", port=sandbox.hosts[1].ssh_port, user="root",
                           identity_file=deploy_key, known_hosts=sandbox.settings.known_hosts_path)
    with pytest.raises(UsageError, match="refused our key"):
        ssh.connect(as_root)
    # and setup with the deploy key alone cannot log in as root at all
    inv.write_text(text.replace(f'admin_identity_file = "{sandbox.settings.key_path}"', ""))
    denied = fab("-H", "sandbox2", "setup", hosts_file=inv)
    assert denied.returncode == 2 and "root" in denied.stderr and "refused our key" in denied.stderr


# --- 13. a known host offering a key of another type is a changed key ------------------------------

def test_trust_calls_a_key_of_another_type_a_changed_key(sandbox, tmp_path):
    other = paramiko.RSAKey.generate(2048)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sandbox.hosts[0].ssh_port} ssh-rsa {other.get_base64()}\n")
    inv = write_inventory(tmp_path / "hosts.toml", sandbox, known_hosts=known)
    r = fab("-H", "sandbox1", "trust", "--yes", hosts_file=inv)
    assert r.returncode == 2 and "HOST KEY CHANGED" in r.stderr and "has ssh-rsa SHA256:" in r.stderr, r.stderr
    assert known.read_text().count("\n") == 1


# --- deploys: 7 (names), 8 (5,000 files moved), 10 (releases are copies), 11 (secrets) -------------------

@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = Repo(tmp_path_factory.mktemp("hostile-src") / "uavcrew")
    for i in range(5000):
        p = r.path / "bulk" / f"d{i % 100:02d}" / f"record-{i:05d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{i}\n")
    for name in (":foo", "-rf", "a*", "ab"):
        (r.path / "odd" / name).parent.mkdir(exist_ok=True)
        (r.path / "odd" / name).write_text("old\n")
    r.git("add", "-A")
    r.git("commit", "-qm", "5000 records and odd names")
    return r


@pytest.fixture(scope="module")
def inv(sandbox, repo, inventory, tmp_path_factory):
    return write_inventory(tmp_path_factory.mktemp("hostile-deploy") / "hosts.toml", sandbox, source=repo.path)


def deploy(inv):
    return fab("-H", "sandbox1", "deploy", hosts_file=inv)


def live(sandbox) -> str:
    return sandbox.check(0, f"readlink {ROOT}/releases/current").strip()


def test_a_committed_name_of_the_release_own_is_refused_before_anything_remote(sandbox, inv, repo):
    before = live(sandbox) if sandbox.run(0, f"test -L {ROOT}/releases/current")[0] == 0 else None
    for name, text in (("media/.gitkeep", ""), (".ayna-release.json", "{}"), ("bad\nname.py", "")):
        repo.git("checkout", "-q", "-b", "hostile-name", "main")
        (repo.path / name).parent.mkdir(exist_ok=True)
        (repo.path / name).write_text(text)
        repo.git("add", "-f", "--", name)           # the demo's .gitignore lists media/ and .ayna-*
        repo.git("commit", "-qm", "hostile")
        r = deploy(inv)
        repo.git("checkout", "-q", "main")
        repo.git("branch", "-q", "-D", "hostile-name")
        assert r.returncode == 2 and "has files a release cannot hold" in r.stderr, r.stdout + r.stderr
        assert "lock + plan" not in r.stdout            # nothing remote happened
    assert sandbox.check(0, f"test ! -e {ROOT}/.deploy-lock && echo free").strip() == "free"
    if before:
        assert live(sandbox) == before


def test_a_deploy_that_moves_5000_files(sandbox, inv, repo):
    first = deploy(inv)
    assert first.returncode == 0, first.stdout + first.stderr
    base = live(sandbox)
    repo.git("mv", "bulk", "moved")
    for name in (":foo", "-rf", "a*"):
        (repo.path / "odd" / name).write_text(f"new {name}\n")
    repo.git("commit", "-qam", "move 5000 records; change the odd names")
    r = deploy(inv)
    assert r.returncode == 0, r.stdout + r.stderr
    new = live(sandbox)
    assert new != base and "5003 files sent" in r.stdout, r.stdout
    rel = f"{ROOT}/releases/{new}"
    assert sandbox.check(0, f"find {rel}/moved -type f | wc -l; test ! -e {rel}/bulk && echo gone").split() == [
        "5000", "gone"]
    assert sandbox.check(0, f"cat {rel}/moved/d07/record-00007.txt").strip() == "7"
    got = {n: sandbox.check(0, f"cat -- {shlex.quote(f'{rel}/odd/{n}')}").strip() for n in (":foo", "-rf", "a*", "ab")}
    assert got == {":foo": "new :foo", "-rf": "new -rf", "a*": "new a*", "ab": "old"}


def test_a_write_to_the_live_release_never_changes_the_previous_one(sandbox, inv, repo):
    new = live(sandbox)
    prev = sandbox.check(0, f"grep -l '\"state\": \"previous\"' {ROOT}/releases/v*/.ayna-release.json").split("/")[-2]
    assert prev != new     # the release a rollback goes back to
    f_new, f_prev = f"{ROOT}/releases/{new}/pyproject.toml", f"{ROOT}/releases/{prev}/pyproject.toml"
    before = sandbox.check(0, f"sha256sum < {f_prev}")
    # The app's user writes the live release's file in place (as an editor, the app or compilemessages would).
    sandbox.check(0, f"printf '# written in place\\n' >> {f_new}", user="adonis")
    try:
        assert sandbox.check(0, f"sha256sum < {f_prev}") == before
        assert sandbox.check(0, f"stat -c %i {f_new}") != sandbox.check(0, f"stat -c %i {f_prev}")
        assert sandbox.check(0, f"stat -c %h {f_new} {f_prev}").split() == ["1", "1"]
    finally:
        sandbox.check(0, f"sed -i '/^# written in place$/d' {f_new}", user="adonis")


PASSWORD = "Kx9f#Lm2q/Vb7w"   # unescaped '#' and '/': the URL ends early; its pieces must never show


def test_a_failing_backup_and_deploy_never_show_the_password(sandbox, inv, repo, inventory):
    env = f"{ROOT}/shared/.env.production"
    sandbox.check(0, f"cp -p {env} {env}.good && sed -i "
                     f"'s|^DATABASE_URL=.*|DATABASE_URL=postgresql://uavcrew:{PASSWORD}@localhost:5432/uavcrew|' {env}")
    try:
        backup = fab("-H", "sandbox1", "backup", hosts_file=inv)
        (repo.path / "odd" / "ab").write_text("newer\n")
        repo.git("commit", "-qam", "a change to deploy")
        dep = deploy(inv)
        log = sandbox.check(0, f"tail -n 1 {ROOT}/logs/deploys.jsonl")
    finally:
        sandbox.check(0, f"mv {env}.good {env}")
    assert backup.returncode != 0 and "percent-encode" in backup.stderr, backup.stdout + backup.stderr
    assert dep.returncode == 1 and "backup" in dep.stderr, dep.stdout + dep.stderr
    entry = json.loads(log)
    assert entry["result"] == "failed" and entry["failed_step"] == "backup" and "percent-encode" in entry["reason"]
    for piece in ("Kx9f", "Lm2q", "Vb7w"):
        for text in (backup.stdout, backup.stderr, dep.stdout, dep.stderr, log):
            assert piece not in text
    assert "percent-encode" not in sandbox.check(0, f"cat {env}")   # the good file is back
