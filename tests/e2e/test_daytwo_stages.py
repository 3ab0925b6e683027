"""Day two on four sandbox hosts, each with its own PostgreSQL: a fleet with a database per host
deployed, redeployed and rolled back (each host migrating its own); a staging and a production host
of one project deployed from one hosts.toml, their units seeing their own env values; history and
the resolved configuration read back."""

from __future__ import annotations

import json

import pytest

from ayna_fab.sandbox import manager
from tests.e2e.conftest import DEMO_ENV, E2E_PORT_BASE, Sandbox, fab, prefix_apart, sandbox_settings, write_inventory
from tests.e2e.test_deploy import Repo
from tests.e2e.test_fleet import TRACE_MIGRATION, currents, no_locks, serving
from tests.prereqs import require_sandbox

pytestmark = pytest.mark.e2e
HOSTS = ["sandbox1", "sandbox2", "sandbox3", "sandbox4"]
SECRET = "staging-only-secret-7d1e"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, run_rootfs):
    """Four hosts, each with a PostgreSQL of its own (DATABASE_URL names localhost everywhere)."""
    require_sandbox()
    settings = sandbox_settings(tmp_path_factory.mktemp("own"), prefix_apart("s"), E2E_PORT_BASE + 70)
    try:
        yield Sandbox(settings, manager.up(settings, 4, print))
    finally:
        manager.down(settings, print)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = Repo(tmp_path_factory.mktemp("ownsrc") / "uavcrew")
    previous = sorted((r.path / "src/web/crew/migrations").glob("0*.py"))[-1].stem
    (r.path / "src/web/crew/migrations/0900_fleet_trace.py").write_text(TRACE_MIGRATION.format(previous=previous))
    r.git("add", "-A")
    r.git("commit", "-qm", "a migration that records where it ran")
    return r


def inventory(path, hosts: Sandbox, repo: Repo, project: str = ""):
    inv = write_inventory(path, hosts, source=repo.path, extra_project=project)
    inv.write_text(inv.read_text().replace("[groups]\nsandbox = ", "[groups]\nown = "))
    return inv


@pytest.fixture(scope="module")
def inv(hosts, repo, tmp_path_factory):
    path = inventory(tmp_path_factory.mktemp("owninv") / "hosts.toml", hosts, repo)
    for host in HOSTS:
        r = fab("-H", host, "setup", hosts_file=path)
        assert r.returncode == 0, r.stdout + r.stderr
    return path


def traced(hosts: Sandbox, i: int) -> list[str]:
    """The hosts the trace migration ran for, as this host's own database recorded them."""
    out = hosts.check(i, "cd / && runuser -u postgres -- psql -d uavcrew -tAc 'select host from fleet_trace'")
    return out.split()


def test_a_fleet_whose_hosts_each_have_a_database_is_refused_unless_the_setting_says_so(hosts, inv):
    r = fab("-H", "own", "deploy", hosts_file=inv)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "sandbox2, sandbox3, sandbox4 do not use the database of sandbox1" in r.stderr, r.stderr
    assert 'database = "own"' in r.stderr and "sandbox-only-db-password" not in r.stdout + r.stderr
    assert currents(hosts) == {h: "" for h in HOSTS} and no_locks(hosts)


def test_four_hosts_with_a_database_each_deploy_redeploy_and_roll_back(hosts, inv, repo):
    inv.write_text(inv.read_text().replace("create_database = true", 'create_database = true\ndatabase = "own"'))
    r = fab("-H", "own", "deploy", "--batch", "2", hosts_file=inv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "migrations run on 4 databases, each on its host: sandbox1, sandbox2, sandbox3, sandbox4" in r.stdout
    assert "fleet: migrate (each database): sandbox1, sandbox2, sandbox3, sandbox4" in r.stdout
    assert serving(hosts) == {h: "v1" for h in HOSTS}
    assert [traced(hosts, i) for i in range(4)] == [[h] for h in HOSTS]   # each migrated its own

    previous = "0900_fleet_trace"
    (repo.path / "src/web/crew/migrations/0901_fleet_trace.py").write_text(TRACE_MIGRATION.format(previous=previous))
    repo.git("add", "-A")
    repo.git("commit", "-qm", "a second migration")
    r = fab("-H", "own", "deploy", "--batch", "2", hosts_file=inv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert serving(hosts) == {h: "v2" for h in HOSTS}
    assert [traced(hosts, i) for i in range(4)] == [[h, h] for h in HOSTS]
    for i in range(4):   # and each backed its own database up before migrating it
        assert int(hosts.check(i, "ls /opt/ayna/uavcrew/shared/backups | grep -c '[.]dump$'")) >= 1
    assert "batch 2: sandbox3, sandbox4" in r.stdout

    r = fab("-H", "own", "rollback", "--to", "v1", hosts_file=inv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert serving(hosts) == {h: "v1" for h in HOSTS} and currents(hosts) == {h: "v1" for h in HOSTS}
    assert no_locks(hosts)

    h = json.loads(fab("-H", "own", "history", "--json", hosts_file=inv).stdout)
    assert not h["errors"]
    newest = {(e["host"], e["event"], e["release"], e["result"]) for e in h["entries"]}
    assert {(host, "rollback", "v1", "ok") for host in HOSTS} <= newest
    assert {(host, "deploy", "v2", "ok") for host in HOSTS} <= newest
    assert h["entries"][0]["event"] == "rollback"


def test_a_staging_and_a_production_host_from_one_hosts_toml(hosts, inv, repo, tmp_path_factory):
    d = tmp_path_factory.mktemp("stages")
    staging_env = d / "uavcrew.staging.env"
    staging_env.write_text(DEMO_ENV.read_text().replace("LOG_LEVEL=INFO", "LOG_LEVEL=DEBUG")
                           + f"STAGE_MARK=staging\nAPI_TOKEN={SECRET}\n")
    production_env = d / "uavcrew.env"
    production_env.write_text(DEMO_ENV.read_text() + "STAGE_MARK=production\n")
    stages = (f'database = "own"\nstages = {{ staging = ["sandbox3"] }}\n'
              f'env_files = {{ staging = "{staging_env}" }}')
    path = inventory(d / "hosts.toml", hosts, repo, stages)
    path.write_text(path.read_text().replace(f'env_file = "{DEMO_ENV}"', f'env_file = "{production_env}"'))
    for host in ("sandbox3", "sandbox4"):
        r = fab("-H", host, "setup", "--force-env", hosts_file=path)
        assert r.returncode == 0, r.stdout + r.stderr
        r = fab("-H", host, "deploy", hosts_file=path)
        assert r.returncode == 0, r.stdout + r.stderr

    def seen(i: int) -> dict[str, str]:
        pid = hosts.main_pid(i, "uavcrew", "web")
        env = hosts.check(i, f"tr '\\0' '\\n' < /proc/{pid}/environ")
        return dict(line.split("=", 1) for line in env.splitlines() if line.startswith(("STAGE_MARK=", "LOG_LEVEL=")))

    assert seen(2) == {"STAGE_MARK": "staging", "LOG_LEVEL": "DEBUG"}
    assert seen(3) == {"STAGE_MARK": "production", "LOG_LEVEL": "INFO"}
    assert hosts.check(2, "readlink /opt/ayna/uavcrew/releases/current/.env").strip().endswith("/.env.staging")
    rows = json.loads(fab("-H", "sandbox3,sandbox4", "status", "--json", hosts_file=path).stdout)
    assert {r["host"]: (r["stage"], r["drift"]) for r in rows} == {"sandbox3": ("staging", False),
                                                                   "sandbox4": ("production", False)}
    assert all("active" in (r["units"]["uavcrew-web-blue.service"], r["units"]["uavcrew-web-green.service"])
               for r in rows)
    view = fab("config", "--host", "sandbox3", "--json", hosts_file=path)
    assert view.returncode == 0 and SECRET not in view.stdout
    (cfg,) = json.loads(view.stdout)
    assert cfg["stage"] == "staging" and cfg["env_file"]["values"]["API_TOKEN"] == "***"
    assert cfg["on_host"]["env_file"] == "/opt/ayna/uavcrew/shared/.env.staging"
