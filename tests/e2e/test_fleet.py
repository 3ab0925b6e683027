"""Fleets on four sandbox hosts sharing one PostgreSQL: prepare everywhere, migrate once, flip in
batches behind health gates, and never leave the fleet half-deployed."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from ayna_fab.sandbox import forwarder, manager
from tests.e2e.conftest import (DEMO_ENV, E2E_PORT_BASE, FAB, REPO, Sandbox, fab, prefix_apart,
                                sandbox_settings, write_inventory)
from tests.e2e.load import Load, failed, releases_seen, served
from tests.e2e.test_deploy import Repo
from tests.prereqs import require_sandbox

pytestmark = pytest.mark.e2e
ROOT = "/opt/ayna/uavcrew"
HOSTS = ["sandbox1", "sandbox2", "sandbox3", "sandbox4"]

TRACE_MIGRATION = '''from django.db import migrations


def trace(apps, schema_editor):
    import socket
    with schema_editor.connection.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS fleet_trace (host text, at timestamptz DEFAULT now())")
        cur.execute("INSERT INTO fleet_trace (host) VALUES (%s)", [socket.gethostname()])


class Migration(migrations.Migration):
    dependencies = [("crew", "{previous}")]
    operations = [migrations.RunPython(trace, migrations.RunPython.noop)]
'''


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, run_rootfs):
    """Four hosts; every one reaches sandbox1's PostgreSQL through /srv/ayna-db."""
    require_sandbox()
    settings = sandbox_settings(tmp_path_factory.mktemp("fleet"), prefix_apart("f"), E2E_PORT_BASE + 50)
    try:
        hosts = manager.up(settings, 4, print, shared_db=True)
        yield Sandbox(settings, hosts)
    finally:
        manager.down(settings, print)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = Repo(tmp_path_factory.mktemp("fleetsrc") / "uavcrew")
    migrations = sorted((r.path / "src/web/crew/migrations").glob("0*.py"))
    previous = migrations[-1].stem
    (r.path / "src/web/crew/migrations/0900_fleet_trace.py").write_text(TRACE_MIGRATION.format(previous=previous))
    r.git("add", "-A")
    r.git("commit", "-qm", "a migration that records where it ran")
    return r


@pytest.fixture(scope="module")
def inv(fleet, repo, tmp_path_factory):
    d = tmp_path_factory.mktemp("fleetinv")
    env = d / "fleet.env"  # one database for the whole group, through the shared socket
    env.write_text(DEMO_ENV.read_text().replace("@localhost:5432/uavcrew", "@/uavcrew?host=/srv/ayna-db"))
    path = write_inventory(d / "hosts.toml", fleet, source=repo.path, env_file=env)
    text = path.read_text().replace('[groups]\nsandbox = ', '[groups]\nfleet = ')
    path.write_text(text)
    for host in HOSTS:
        r = fab("-H", host, "setup", hosts_file=path)
        assert r.returncode == 0, r.stdout + r.stderr
    return path


def serving(fleet: Sandbox) -> dict[str, str | None]:
    out = {}
    for i, hs in enumerate(fleet.hosts):
        code, body, _ = fleet.run(i, "curl -s -m 5 http://127.0.0.1:8130/health/")
        try:
            out[hs.name] = json.loads(body)["release"]
        except (ValueError, KeyError):
            out[hs.name] = None
    return out


def currents(fleet: Sandbox) -> dict[str, str]:
    return {hs.name: fleet.run(i, f"readlink {ROOT}/releases/current")[1].strip()
            for i, hs in enumerate(fleet.hosts)}


def no_locks(fleet: Sandbox) -> bool:
    return all(fleet.run(i, f"test -e {ROOT}/.deploy-lock")[0] != 0 for i in range(len(fleet.hosts)))


def test_a_clean_fleet_deploy_migrates_once(fleet, inv):
    r = fab("-H", "fleet", "deploy", hosts_file=inv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "migrations run once, on sandbox1" in r.stdout
    assert serving(fleet) == {h: "v1" for h in HOSTS}
    assert currents(fleet) == {h: "v1" for h in HOSTS}
    rows = fleet.check(0, "cd / && runuser -u postgres -- psql -d uavcrew -tAc 'select host from fleet_trace'")
    assert rows.split() == ["sandbox1"]  # one database, one migration run, on the migrate host
    assert r.stdout.count("] migrate ") == 1
    # Every host reads and writes the one database: the same migrations table everywhere.
    counts = {fleet.check(i, "cd /opt/ayna/uavcrew/releases/current/src/web && set -a && "
                             ". /opt/ayna/uavcrew/shared/.env.production && set +a && "
                             "../../.venv/bin/python manage.py showmigrations crew | grep -c '\\[X\\]'",
                          user="adonis").strip() for i in range(4)}
    assert len(counts) == 1


def test_a_fleet_dry_run_shows_the_plan_batches_and_one_migrate(fleet, inv, repo):
    repo.git("commit", "-q", "--allow-empty", "-m", "nothing new")
    r = fab("-H", "fleet", "deploy", "--dry-run", "--batch", "2", hosts_file=inv)
    assert r.returncode == 0, r.stdout + r.stderr
    plan = [line for line in r.stdout.splitlines() if line.startswith("fleet: ")]
    assert "fleet: migrate (once): sandbox1" in plan
    assert "fleet: batch 1: sandbox1, sandbox2" in plan and "fleet: batch 2: sandbox3, sandbox4" in plan
    prepares = [line for line in r.stdout.splitlines() if line.lstrip().startswith("ayna-host prepare ")]
    assert len(prepares) == 5 and sum('"migrate"' in line for line in prepares) == 1
    assert currents(fleet) == {h: "v1" for h in HOSTS} and no_locks(fleet)


def test_a_health_failure_in_the_second_batch_rolls_back_and_the_rest_never_flip(fleet, inv, repo):
    # Healthy when started on its own (the pre-flip check passes), failing once its unit runs it
    # (systemd sets INVOCATION_ID for units): a failure only production shows.
    health = repo.path / "src/web/crew/health.py"
    text = health.read_text()
    marker = "def build_report("
    assert marker in text
    health.write_text(text.replace(marker, "import os as _os\nimport socket as _socket\n\n\n" + marker, 1).replace(
        '"release": settings.AYNA_RELEASE["release"],',
        '"release": settings.AYNA_RELEASE["release"] if _socket.gethostname() != "sandbox2" '
        'or "INVOCATION_ID" not in _os.environ else 1 / 0,', 1))
    repo.git("commit", "-qam", "health fails on sandbox2 only, under its unit")
    r = fab("-H", "fleet", "deploy", "--batch", "1", hosts_file=inv)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "fleet deploy stopped at batch 2: sandbox2 failed" in r.stderr, r.stdout + r.stderr
    for host in HOSTS:
        assert f"{host}: serving v1" in r.stderr
    assert "[sandbox1] flip" in r.stdout and "[sandbox2] flip" in r.stdout
    assert "[sandbox3] flip" not in r.stdout and "[sandbox4] flip" not in r.stdout  # never flipped
    assert "[sandbox1] restore" in r.stdout and "[sandbox2] restore" in r.stdout
    assert serving(fleet) == {h: "v1" for h in HOSTS} and currents(fleet) == {h: "v1" for h in HOSTS}
    assert no_locks(fleet)
    repo.git("revert", "--no-edit", "HEAD")


def test_a_host_unreachable_during_prepare_means_nobody_flips(fleet, inv, repo):
    repo.mode("code-change", text="Fleet edition")
    proc = subprocess.Popen([str(FAB), "-H", "fleet", "deploy"], cwd=REPO,
                            env={**os.environ, "AYNA_FAB_HOSTS": str(inv)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if "[sandbox4] upload" in line:
            break
    forwarder.request(fleet.hosts[3].control, "block on")  # sandbox4 drops off the network
    try:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 1, out + err
        assert "fleet deploy stopped at prepare: sandbox4 failed" in err
        assert "flip" not in out
    finally:
        forwarder.request(fleet.hosts[3].control, "block off")
    assert serving(fleet) == {h: "v1" for h in HOSTS} and currents(fleet) == {h: "v1" for h in HOSTS}
    assert all(fleet.run(i, f"test -e {ROOT}/.deploy-lock")[0] != 0 for i in range(3))
    # sandbox4 kept serving, and the laptop could not release its lock while it was unreachable:
    # the host did, by itself, once its connection was gone and its prepare step had ended.
    deadline = time.monotonic() + 90
    while not no_locks(fleet) and time.monotonic() < deadline:
        time.sleep(1)
    assert no_locks(fleet)
    last = json.loads(fleet.check(3, f"tail -n 1 {ROOT}/logs/deploys.jsonl"))
    assert last["result"] == "abandoned" and "connection to the laptop closed" in last["reason"], last


def test_status_flags_drift_and_a_fleet_deploy_ends_it(fleet, inv, repo):
    one = fab("-H", "sandbox3", "deploy", hosts_file=inv)
    assert one.returncode == 0, one.stderr
    s = json.loads(fab("-H", "fleet", "status", "--json", hosts_file=inv).stdout)
    assert {row["host"]: row["drift"] for row in s} == {h: True for h in HOSTS}
    assert {row["host"]: row["release"] for row in s}["sandbox3"] != s[0]["release"]
    table = fab("-H", "fleet", "status", hosts_file=inv).stdout
    assert table.count("DRIFT") == 4
    every = fab("-H", "fleet", "deploy", hosts_file=inv)
    assert every.returncode == 0, every.stdout + every.stderr
    s = json.loads(fab("-H", "fleet", "status", "--json", hosts_file=inv).stdout)
    assert len({row["release"] for row in s}) == 1 and not any(row["drift"] for row in s)


def test_a_fleet_rollback_brings_every_host_to_the_same_release(fleet, inv):
    before = serving(fleet)
    assert len(set(before.values())) == 1
    r = fab("-H", "fleet", "rollback", "--to", "v1", hosts_file=inv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fleet: every host to v1" in r.stdout
    assert serving(fleet) == {h: "v1" for h in HOSTS} and currents(fleet) == {h: "v1" for h in HOSTS}
    assert no_locks(fleet)


def test_an_unreachable_host_is_a_status_row_with_its_error(fleet, inv):
    forwarder.request(fleet.hosts[3].control, "block on")
    try:
        r = fab("-H", "fleet", "status", "--json", hosts_file=inv)
    finally:
        forwarder.request(fleet.hosts[3].control, "block off")
    assert r.returncode == 1 and "1 host(s) could not be queried" in r.stderr
    rows = {row["host"]: row for row in json.loads(r.stdout)}
    assert set(rows) == set(HOSTS)
    assert rows["sandbox4"]["error"] and "sandbox4" in rows["sandbox4"]["error"]
    assert all(rows[h]["error"] is None and rows[h]["release"] == "v1" for h in HOSTS[:3])


def test_a_fleet_deploy_in_batches_of_one_loses_no_request_on_any_host(fleet, inv, repo):
    before = currents(fleet)
    loads = [Load(fleet, i, "fleet").start() for i in range(len(HOSTS))]
    try:
        repo.mode("code-change", text="Fleet under load")
        r = fab("-H", "fleet", "deploy", "--batch", "1", hosts_file=inv)
    finally:
        stats = [load.stop() for load in loads]
    assert r.returncode == 0, r.stdout + r.stderr
    after = currents(fleet)
    assert len(set(after.values())) == 1 and set(after.values()) != set(before.values())
    for hs, host, st in zip(fleet.hosts, HOSTS, stats):
        assert served(st) > 50 and failed(st) == 0, (host, st)
        # the load ran across the flip: it was answered by the old release and by the new one
        assert {before[hs.name], after[hs.name]} <= releases_seen(st), (host, st)
