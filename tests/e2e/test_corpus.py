"""Projects as people have them, deployed to a real sandbox host: five shapes none of which is shaped
like the demo (tests/corpus.py), each taken from `fab init` to setup, deploy, a one-file redeploy,
a rollback, and a backup and restore where its database allows; then a private package index over
HTTPS with a CA of the test's own, and a host reached only through a bastion.

Every project's hosts.toml entry and .env are fab init's, unedited (the checks level, the index
settings and the bastion are the features under test, added on top). All five live on the
session's first host, each in its own port range; the second host is the bastion.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

from ayna_fab.config import model as config
from ayna_fab.remote import ssh
from ayna_fab.sandbox import forwarder, procs
from tests import corpus
from tests.e2e import https_index as tls_index
from tests.e2e.conftest import REPO, fab

pytestmark = pytest.mark.e2e
HOST = "sandbox1"


BOOM_MIGRATION = """from django.db import migrations


def boom(apps, schema_editor):
    raise RuntimeError("0002 does not like these notes")


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]
    operations = [migrations.RunPython(boom)]
"""


class Corpus:
    def __init__(self, sandbox, root: Path) -> None:
        self.sandbox = sandbox
        self.root = root
        self.index, self.inv = corpus.sandbox_inventory(sandbox, root, HOST)
        self.made: dict[str, tuple[Path, Path]] = {}

    def make(self, shape: str) -> tuple[Path, Path]:
        self.made[shape] = corpus.make(shape, self.root / "src", lock_index=self.index)
        return self.made[shape]

    def fab(self, *args: str, ok: bool = True, inv: Path | None = None):
        started = time.monotonic()
        r = fab(*args, hosts_file=inv or self.inv)
        print(f"fab {' '.join(args)[:80]}: exit {r.returncode} in {time.monotonic() - started:.1f}s")
        if ok:
            assert r.returncode == 0, f"fab {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
        return r

    def project(self, name: str) -> config.Project:
        return config.load(self.inv).projects[name]

    def get(self, name: str, service: str, path: str) -> str:
        port = self.project(name).port(service)
        code, out, _ = self.sandbox.run(0, f"curl -s -m 5 http://127.0.0.1:{port}{path}")
        return out

    def current(self, name: str) -> str:
        return self.sandbox.check(0, f"readlink /opt/ayna/{name}/releases/current").strip()

    @staticmethod
    def units_of(name: str, *services: str) -> list[str]:
        """The unit files setup installs for these services: two slots each, beat one."""
        return sorted(f"{name}-beat.service" if s == "beat" else f"{name}-{s}-{slot}.service"
                      for s in services for slot in (("",) if s == "beat" else ("blue", "green")))

    def installed_units(self, name: str) -> list[str]:
        out = self.sandbox.check(0, f"cd /etc/systemd/system && ls -1 {name}-*.service")
        return sorted(out.split())

    def edit_entry(self, name: str, add: str = "", remove: str = "") -> None:
        """A change to the project's entry (a feature under test, not a fix of fab init's work)."""
        text = self.inv.read_text()
        if remove:
            assert remove in text
            text = text.replace(remove, "", 1)
        if add:
            header = f"[projects.{name}]\n"
            text = text.replace(header, header + add + "\n", 1)
        self.inv.write_text(text)


@pytest.fixture(scope="module")
def c(sandbox, tmp_path_factory):
    assert len(sandbox.hosts) >= 2, "the corpus needs two sandbox hosts (the second is a bastion)"
    corpus_ = Corpus(sandbox, tmp_path_factory.mktemp("corpus"))
    yield corpus_
    # the session's hosts go on to other tests: the corpus's projects stop running (one round trip)
    units = " ".join(f"'{shape}-*.service' '{shape}-*.socket'" for shape in corpus_.made)
    if units:
        sandbox.run(0, f"systemctl stop {units}")


# --- the shared story ---------------------------------------------------------------------------

def init_setup_deploy(c: Corpus, shape: str, project_dir: Path) -> str:
    """fab init --write, setup, first deploy; the first deploy's output."""
    r = c.fab("init", str(project_dir), "--write", "--host", HOST)
    assert "Nothing stands in the way of a first deploy." in r.stdout, r.stdout
    assert "CHANGE-ME" not in (c.root / f"{shape}.env").read_text()
    c.fab("-H", HOST, "setup", "--project", shape)
    r = c.fab("-H", HOST, "deploy", "--project", shape)
    assert f"{shape} v1" in r.stdout and "live and healthy" in r.stdout, r.stdout
    return r.stdout


def redeploy_one_file(c: Corpus, shape: str, repo: Path, path: str, also: dict[str, str] | None = None) -> str:
    """Change the version in one file of the project (and, in a monorepo, others outside it), commit,
    deploy: exactly that one file travels."""
    target = repo / path
    target.write_text(target.read_text().replace('"one"', '"two"'))
    for other, text in (also or {}).items():
        (repo / other).write_text(text)
    corpus.commit(repo, f"{shape}: version two")
    r = c.fab("-H", HOST, "deploy", "--project", shape)
    assert re.search(r"\b1 files? sent", r.stdout), r.stdout
    assert re.search(rf"{shape} v\d+ \(\w+\) is live and healthy", r.stdout), r.stdout
    return r.stdout


def rollback(c: Corpus, shape: str) -> None:
    c.fab("-H", HOST, "rollback", "--project", shape)
    assert c.current(shape) == "v1"


def backup_and_restore(c: Corpus, shape: str, suffix: str, add_row: str, rows: callable) -> None:
    """A backup (0600 in shared/backups), a row written after it, a restore that takes the row away."""
    before = rows()
    r = c.fab("-H", HOST, "backup", "--project", shape)
    name = re.search(rf"{shape}-\d{{8}}T\d{{6}}Z-v\d+{re.escape(suffix)}", r.stdout).group(0)
    mode = c.sandbox.check(0, f"stat -c %a /opt/ayna/{shape}/shared/backups/{name}").strip()
    assert mode == "600"
    c.fab("-H", HOST, "manage", "--project", shape, "--", "shell", "-c", add_row)
    assert rows() == before + 1
    c.fab("-H", HOST, "restore", "--project", shape, "--backup", name, "--yes")
    assert rows() == before


def home_rows(c: Corpus, shape: str):
    def count() -> int:
        deadline = time.monotonic() + 30
        while True:  # the units start again after a restore
            m = re.search(r"(\d+) rows", c.get(shape, "web", "/"))
            if m or time.monotonic() > deadline:
                return int(m.group(1))
            time.sleep(0.5)
    return count


# --- the shapes ---------------------------------------------------------------------------------

def test_notes_root_layout_web_only_on_sqlite(c):
    project, repo = c.make("notes")
    out = init_setup_deploy(c, "notes", project)
    entry = c.project("notes")
    assert (entry.django_dir, entry.services, entry.checks) == (".", ("web",), "errors")
    assert c.installed_units("notes") == c.units_of("notes", "web")
    # the usual warnings are shown, and do not stop a deploy by default
    assert "security.W001" in out and "models.W042" in out and 'checks = "strict"' in out
    assert c.get("notes", "web", "/") == "notes one: 0 rows\n"

    c.edit_entry("notes", add='checks = "strict"')
    r = c.fab("-H", HOST, "deploy", "--project", "notes", ok=False)
    said = r.stdout + r.stderr
    assert r.returncode == 1, said
    assert "SystemCheckError: System check identified some issues" in said and "security.W001" in said
    assert "Traceback" not in said and "@@" not in said and "django_steps" not in said
    assert c.current("notes") == "v1" and c.get("notes", "web", "/") == "notes one: 0 rows\n"
    c.edit_entry("notes", remove='checks = "strict"\n')

    # a migration that fails shows its own error and its own frames, nothing of ayna-fab's program
    corpus.git(repo, "checkout", "-q", "-b", "bad-migration")
    (repo / "notes/migrations/0002_boom.py").write_text(BOOM_MIGRATION)
    corpus.commit(repo, "notes: a migration that fails")
    corpus.git(repo, "checkout", "-q", "main")
    r = c.fab("-H", HOST, "deploy", "--project", "notes", "--ref", "bad-migration", ok=False)
    said = r.stdout + r.stderr
    assert r.returncode == 1 and "failed at migrate" in said, said
    assert re.search(r"backup .*notes-\d{8}T\d{6}Z-v\d+\.sqlite3", said), said   # before migrate, on SQLite
    assert "RuntimeError: 0002 does not like these notes" in said and 'migrations/0002_boom.py", line 5' in said
    assert "<string>" not in said and "@@" not in said and "django_steps" not in said
    assert c.current("notes") == "v1" and c.get("notes", "web", "/") == "notes one: 0 rows\n"

    out = redeploy_one_file(c, "notes", repo, "notes/version.py")
    assert "no migration pending, so no dump" in out, out   # nothing to migrate: no backup in the way
    assert c.get("notes", "web", "/") == "notes two: 0 rows\n"
    rollback(c, "notes")
    assert c.get("notes", "web", "/") == "notes one: 0 rows\n"
    backup_and_restore(c, "notes", ".sqlite3", "from notes.models import Note; Note.objects.create(text='x')",
                       home_rows(c, "notes"))


def test_ledger_root_layout_web_and_api_on_postgresql(c):
    project, repo = c.make("ledger")
    init_setup_deploy(c, "ledger", project)
    entry = c.project("ledger")
    assert (entry.django_dir, entry.asgi_dir, entry.services) == (".", ".", ("web", "api"))
    assert c.installed_units("ledger") == c.units_of("ledger", "api", "web")
    assert json.loads(c.get("ledger", "api", "/health")) == {"ok": True, "version": "one", "database": "postgresql"}
    assert c.get("ledger", "web", "/") == "entries one: 0 rows\n"
    redeploy_one_file(c, "ledger", repo, "api/version.py")
    assert json.loads(c.get("ledger", "api", "/health"))["version"] == "two"
    rollback(c, "ledger")
    assert json.loads(c.get("ledger", "api", "/health"))["version"] == "one"
    backup_and_restore(c, "ledger", ".dump", "from entries.models import Entry; Entry.objects.create(text='x')",
                       home_rows(c, "ledger"))


def test_pinger_api_only(c):
    project, repo = c.make("pinger")
    init_setup_deploy(c, "pinger", project)
    entry = c.project("pinger")
    assert (entry.services, entry.django, entry.asgi_dir, dict(entry.health)) == (
        ("api",), False, "src", {"api": "/openapi.json"})
    assert c.installed_units("pinger") == c.units_of("pinger", "api")
    assert json.loads(c.get("pinger", "api", "/")) == {"pinger": "one"}
    redeploy_one_file(c, "pinger", repo, "src/pinger/version.py")
    assert json.loads(c.get("pinger", "api", "/")) == {"pinger": "two"}
    rollback(c, "pinger")
    assert json.loads(c.get("pinger", "api", "/")) == {"pinger": "one"}
    # no database: nothing to back up, said plainly
    r = c.fab("-H", HOST, "backup", "--project", "pinger", ok=False)
    assert r.returncode != 0 and "does not exist yet: nothing to back up" in r.stdout + r.stderr


def test_jobs_web_and_celery_without_beat(c):
    project, repo = c.make("jobs")
    init_setup_deploy(c, "jobs", project)
    entry = c.project("jobs")
    assert (entry.django_dir, entry.services, entry.celery_app) == ("backend", ("web", "celery"), "jobsite")
    assert c.installed_units("jobs") == c.units_of("jobs", "celery", "web")
    rows = home_rows(c, "jobs")
    c.fab("-H", HOST, "manage", "--project", "jobs", "--", "shell", "-c",
          "from queue_app.tasks import record; record.delay('queued')")
    deadline = time.monotonic() + 40   # the worker picks the task up and writes the row
    while rows() != 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert rows() == 1
    redeploy_one_file(c, "jobs", repo, "backend/queue_app/version.py")
    assert c.get("jobs", "web", "/") == "queue_app two: 1 rows\n"
    rollback(c, "jobs")
    assert c.get("jobs", "web", "/") == "queue_app one: 1 rows\n"
    backup_and_restore(c, "jobs", ".sqlite3", "from queue_app.models import Job; Job.objects.create(text='x')", rows)


def test_orders_api_and_celery_in_a_monorepo_subdirectory(c):
    project, mono = c.make("orders")
    init_setup_deploy(c, "orders", project)
    entry = c.project("orders")
    assert entry.source == project.resolve() or entry.source == project
    assert (entry.services, entry.django, entry.asgi_dir, entry.celery_app) == (
        ("api", "celery"), False, ".", "orders.worker")
    assert c.installed_units("orders") == c.units_of("orders", "api", "celery")
    assert json.loads(c.get("orders", "api", "/health")) == {"orders": "one"}
    assert c.sandbox.check(0, f"systemctl is-active {c.sandbox.unit(0, 'orders', 'celery')}").strip() == "active"
    # only the project's files travel: the release holds services/orders, not the monorepo
    assert c.sandbox.run(0, "test -e /opt/ayna/orders/releases/v1/web-frontend")[0] != 0
    redeploy_one_file(c, "orders", mono, "services/orders/orders/version.py",
                      also={"web-frontend/package.json": '{"name": "frontend", "version": "2"}\n'})
    assert json.loads(c.get("orders", "api", "/health")) == {"orders": "two"}
    rollback(c, "orders")
    assert json.loads(c.get("orders", "api", "/health")) == {"orders": "one"}


# --- a private index over HTTPS -----------------------------------------------------------------

INDEX_PORT = 8443
INDEX_UNIT = "ayna-corpus-index"


@pytest.fixture
def https_index(c):
    """The wheelhouse served over HTTPS on the host by a CA only the host's system store knows."""
    files = tls_index.make_ca_and_server()
    c.sandbox.check(0, "mkdir -p /root/index")
    conn = ssh.connect(c.sandbox.endpoint(0))
    try:
        for name, data in files.items():
            with conn.sftp().open(f"/root/index/{name}", "wb") as f:
                f.write(data)
        with conn.sftp().open("/root/index/serve.py", "w") as f:
            f.write(tls_index.SERVER)
    finally:
        conn.close()
    c.sandbox.check(0, "cp /root/index/ca.crt /usr/local/share/ca-certificates/ayna-corpus-ca.crt && "
                       "update-ca-certificates >/dev/null 2>&1 && "
                       f"systemd-run --quiet --unit={INDEX_UNIT} python3 /root/index/serve.py --port {INDEX_PORT} "
                       "--cert /root/index/server.crt --key /root/index/server.key --wheels /srv/wheelhouse && "
                       f"for i in $(seq 50); do curl -sf https://localhost:{INDEX_PORT}/simple/ >/dev/null && exit 0; "
                       "sleep 0.2; done; exit 1")
    yield f"https://localhost:{INDEX_PORT}/simple"
    c.sandbox.run(0, f"systemctl stop {INDEX_UNIT}; rm -f /usr/local/share/ca-certificates/ayna-corpus-ca.crt; "
                     "update-ca-certificates --fresh >/dev/null 2>&1")


def test_a_private_index_over_https_needs_and_gets_the_system_certificate_store(c, https_index):
    project, repo = c.made["pinger"]
    # a new dependency, so the deploy must fetch from the index (everything else is in the live venv)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"uvicorn"]', '"uvicorn", "humanize"]'))
    corpus.lock(project, c.index)
    corpus.commit(repo, "pinger: humanize")
    live = c.current("pinger")

    c.edit_entry("pinger", add=f'index_url = "{https_index}"')
    r = c.fab("-H", HOST, "setup", "--project", "pinger")
    assert "wrote /opt/ayna/pinger/uv.toml" in r.stdout
    uv_toml = c.sandbox.check(0, "cat /opt/ayna/pinger/uv.toml; stat -c '%U %a' /opt/ayna/pinger/uv.toml")
    assert https_index in uv_toml and "system-certs" not in uv_toml and "root 644" in uv_toml
    r = c.fab("-H", HOST, "deploy", "--project", "pinger", ok=False)
    said = r.stdout + r.stderr
    assert r.returncode == 1 and "install" in said and ("UnknownIssuer" in said or "invalid peer certificate" in said), said
    assert c.current("pinger") == live

    c.edit_entry("pinger", add="system_certs = true")
    r = c.fab("-H", HOST, "deploy", "--project", "pinger", ok=False)   # hosts.toml changed, the host did not
    assert r.returncode != 0 and "not what setup wrote on the host" in r.stdout + r.stderr
    assert "fab -H sandbox1 setup --project pinger" in r.stdout + r.stderr
    c.fab("-H", HOST, "setup", "--project", "pinger")
    r = c.fab("-H", HOST, "deploy", "--project", "pinger")
    assert "live and healthy" in r.stdout
    served = c.sandbox.check(0, f"journalctl -u {INDEX_UNIT} --no-pager -o cat")
    assert re.search(r'"GET /files/humanize-[^ ]+\.whl HTTP/1\.1" 200', served), served
    assert c.sandbox.check(0, "/opt/ayna/pinger/venv/bin/python -c 'import humanize; print(humanize.__name__)'"
                           ).strip() == "humanize"


# --- a host behind a bastion --------------------------------------------------------------------

@pytest.fixture
def bastion(c, tmp_path):
    """sandbox2 as a bastion: from its network namespace, 127.0.0.1:2222 reaches sandbox1's sshd.
    It lets in a `jump` user with the sandbox's key (a bastion's login is nobody's deploy user)."""
    target, hop = c.sandbox.hosts[0], c.sandbox.hosts[1]
    c.sandbox.check(1, "id -u jump >/dev/null 2>&1 || useradd --create-home --shell /bin/sh jump; "
                       "install -d -m 700 -o jump -g jump ~jump/.ssh && "
                       "install -m 600 -o jump -g jump /root/.ssh/authorized_keys ~jump/.ssh/authorized_keys")
    control = tmp_path / "bastion-forwarder.sock"
    argv = ["ip", "netns", "exec", hop.machine, sys.executable, "-m", "ayna_fab.sandbox.forwarder",
            "--listen", "127.0.0.1:2222", "--netns", f"/run/netns/{target.machine}", "--target", "127.0.0.1:22",
            "--control", str(control)]
    rec = procs.start_detached(argv, tmp_path / "bastion-forwarder.log", env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if forwarder.request(control, "ping").get("ok"):
                    break
            except OSError:
                time.sleep(0.05)
        yield control
    finally:
        procs.stop(rec, grace=3)


def test_a_host_behind_a_bastion_deploys_once_each_hop_is_trusted(c, bastion, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")          # nothing trusted yet: neither the bastion nor the host behind it
    hop = c.sandbox.hosts[1]
    inv = c.root / "bastion.toml"   # beside hosts.toml: the same sources and .env files
    inv.write_text(c.inv.read_text().replace(f'known_hosts = "{c.sandbox.settings.known_hosts_path}"',
                                             f'known_hosts = "{known}"')
                   + f'\n[hosts.jump]\nhostname = "127.0.0.1"\nport = {hop.ssh_port}\nuser = "jump"\n'
                   + '\n[hosts.inner]\nhostname = "127.0.0.1"\nport = 2222\ngateway = "jump"\nprojects = ["notes"]\n')

    r = c.fab("-H", "inner", "deploy", "--project", "notes", ok=False, inv=inv)
    said = r.stdout + r.stderr
    assert r.returncode == 2, said
    assert "through its gateway jump" in said and "refusing an unknown host key" in said
    assert "fab -H jump trust" in said
    assert forwarder.request(bastion, "stats")["accepted"] == 0   # nothing went past the bastion

    c.fab("-H", "jump", "trust", "--yes", inv=inv)
    r = c.fab("-H", "inner", "deploy", "--project", "notes", ok=False, inv=inv)
    assert r.returncode == 2 and "[127.0.0.1]:2222 is not in" in r.stdout + r.stderr   # the host's own key
    r = c.fab("-H", "inner", "trust", "--yes", inv=inv)              # read through the bastion
    assert "[127.0.0.1]:2222 offers ssh-ed25519" in r.stdout
    recorded = known.read_text()
    own_key = (Path(c.sandbox.hosts[0].dir) / "ssh_host_ed25519_key.pub").read_text().split()[1]
    assert f"[127.0.0.1]:2222 ssh-ed25519 {own_key}" in recorded

    r = c.fab("-H", "inner", "deploy", "--project", "notes", inv=inv)
    assert "live and healthy" in r.stdout
    assert forwarder.request(bastion, "stats")["accepted"] >= 1
    assert c.get("notes", "web", "/") == "notes two: 0 rows\n"   # the last commit of notes, through the bastion
