"""What a host says is data to check, never to trust: a release record's revision reaches laptop hooks
only as a commit hash, and DATABASE_URL's secret parameters never reach pg_dump's argv (readable by
every local user in /proc), whatever they are called."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ayna_fab.config.model import Hook
from ayna_fab.hostprog import backups as rules
from ayna_fab.ops import hooks
from tests.unit.test_hooks import with_hooks
from tests.unit.test_ops import FAKE_PG, fake_project, layout, pg_calls, run_script
from tests.unit.test_recovery import World

from ayna_fab.commands import hostcalls as hostcmd


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path, hosts=("h1",))
    w.deploy()                 # v1
    w.commit("v = 2\n")
    w.deploy()                 # v2
    return w


@pytest.mark.parametrize("recorded", [12345, "$(reboot)", "abc", "g" * 40, ["a1b2c3d"], None, "a1b2c3d" * 6])
def test_a_rollback_tells_laptop_hooks_only_a_revision_that_is_a_commit_hash(world, recorded):
    record = Path(world.layout("h1").release(1)) / ".ayna-release.json"
    meta = json.loads(record.read_text())
    meta["revision"] = recorded
    record.write_text(json.dumps(meta))
    out = world.tmp / "told.json"
    with_hooks(world, Hook(name="chat", phase="after-success", on="laptop", command=(
        "python3", "-c", "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))", str(out))))
    said = []
    outcome = hooks.Outcome("rollback", world.project, ["h1"])
    with hooks.laptop_hooks(outcome, said.append, dry_run=False):
        outcome.track(world.rollback())
    told = json.loads(out.read_text())
    assert told["AYNA_REVISION"] == "" and told["AYNA_RELEASE"] == "v1"
    warned = [line for line in world.said + said if "revision" in line and "h1" in line]
    assert warned and "warning" in warned[0], world.said


def test_a_rollback_passes_a_real_revision_on(world):
    revision = json.loads((Path(world.layout("h1").release(1)) / ".ayna-release.json").read_text())["revision"]
    out = world.tmp / "told.json"
    with_hooks(world, Hook(name="chat", phase="after-success", on="laptop", command=(
        "python3", "-c", "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))", str(out))))
    outcome = hooks.Outcome("rollback", world.project, ["h1"])
    with hooks.laptop_hooks(outcome, [].append, dry_run=False):
        outcome.track(world.rollback())
    assert json.loads(out.read_text())["AYNA_REVISION"] == revision and len(revision) == 40


SSL_SECRET = "Kp9sslSecretPass"
URL = (f"postgresql://u:hunter2@localhost/app?sslmode=require&sslpassword={SSL_SECRET}"
       "&sslkey=/home/u/client.key&application_name=app")


def test_secret_query_parameters_go_to_a_private_service_file_not_the_uri():
    uri, password = rules.connection(URL)
    assert password == "hunter2" and SSL_SECRET not in uri and "sslkey" not in uri
    assert uri == "postgresql://u@localhost/app?sslmode=require&application_name=app&service=ayna-fab"
    assert rules.service_file(rules.hidden(URL)) == (
        f"[ayna-fab]\nsslpassword={SSL_SECRET}\nsslkey=/home/u/client.key\n")
    with pytest.raises(ValueError) as got:
        rules.service_file([("sslpassword", "a\nhost=evil")])
    assert "a\nhost" not in str(got.value)


@pytest.fixture
def service_pg(tmp_path):
    """fake pg tools that also record the service file libpq would read, and its mode."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = FAKE_PG.replace('"PGPASSWORD": os.environ.get("PGPASSWORD")',
                           '"PGPASSWORD": os.environ.get("PGPASSWORD"), '
                           '"service": open(os.environ["PGSERVICEFILE"]).read() if os.environ.get("PGSERVICEFILE") else None, '
                           '"service_mode": oct(os.stat(os.environ["PGSERVICEFILE"]).st_mode & 0o777) '
                           'if os.environ.get("PGSERVICEFILE") else None')
    assert fake != FAKE_PG
    (bindir / "pg_dump").write_text(fake)
    (bindir / "pg_dump").chmod(0o755)
    log = tmp_path / "pg.log"
    return {"PATH": f"{bindir}:{os.environ['PATH']}", "FAKE_PG_LOG": str(log)}, log


def test_the_argv_of_pg_dump_holds_no_secret_parameter(tmp_path, service_pg, ):
    env, log = service_pg
    fake_project(tmp_path, f"DATABASE_URL={URL}\n")
    from ayna_fab.config.model import Project
    project = Project(name="uavcrew", source=None, port_base=8130, services=("web",), env="production")
    p = run_script(hostcmd.backup(layout(tmp_path), project, None, 3).script, **env)
    assert p.returncode == 0, p.stdout + p.stderr
    (call,) = pg_calls(log)
    argv = " ".join(call["argv"])
    assert SSL_SECRET not in argv and "hunter2" not in argv and "client.key" not in argv
    assert "sslmode=require" in argv and "service=ayna-fab" in argv
    assert SSL_SECRET in call["service"] and call["service_mode"] == "0o600"
    assert SSL_SECRET not in p.stdout + p.stderr
