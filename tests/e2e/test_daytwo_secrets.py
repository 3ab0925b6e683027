"""Secrets, one-off commands and removing a project, on real sandbox hosts: env.diff, env.push under
load, env.set / env.unset of a tricky value seen by the units, exec's exit status, remove then setup
then deploy, and purge's last backup. The demo project is deployed to both hosts first."""

from __future__ import annotations

import base64
import json
import re

import pytest

from tests.e2e.conftest import DEMO_ENV, fab, write_inventory
from tests.e2e.load import Load, failed, served
from tests.e2e.test_deploy import Repo

pytestmark = pytest.mark.e2e
ROOT = "/opt/ayna/uavcrew"
ENV = f"{ROOT}/shared/.env.production"
SECRET = "sandbox-only-db-password"
TRICKY = "a #b 'c' \"d\" $HOME ${X} \\e  x;y"   # a comment sign, both quotes, spaces, $ and a backslash


@pytest.fixture(scope="module")
def world(sandbox, first_setup, tmp_path_factory):
    assert all(r.returncode == 0 for r in first_setup), [r.stderr for r in first_setup]
    tmp = tmp_path_factory.mktemp("secrets")
    env_file = tmp / "uavcrew.env"
    env_file.write_text(DEMO_ENV.read_text())
    env_file.chmod(0o600)
    repo = Repo(tmp / "uavcrew")
    inv = write_inventory(tmp / "hosts.toml", sandbox, source=repo.path, env_file=env_file)
    for hs in sandbox.hosts:
        ok(fab("-H", hs.name, "setup", hosts_file=inv))   # the env file as the local one has it
        ok(fab("-H", hs.name, "deploy", hosts_file=inv))
    return {"inv": inv, "env_file": env_file, "names": [hs.name for hs in sandbox.hosts]}


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def run(world, *args, input=None):
    return fab(*args, hosts_file=world["inv"], input=input)


def unit_env(sandbox, index: int, unit: str) -> dict[str, str]:
    """The environment of the unit's main process, as the kernel has it."""
    pid = sandbox.check(index, f"systemctl show -p MainPID --value {unit}").strip()
    raw = sandbox.check(index, f"base64 -w0 /proc/{pid}/environ")
    pairs = base64.b64decode(raw).decode("utf-8", "surrogateescape").split("\0")
    return dict(p.split("=", 1) for p in pairs if "=" in p)


def test_diff_names_the_keys_only_and_push_under_load_loses_no_request(sandbox, world):
    h0 = world["names"][0]
    text = world["env_file"].read_text().replace("LOG_LEVEL=INFO", "LOG_LEVEL=DEBUG") + "FEATURE_FLAG=on\n"
    world["env_file"].write_text(text)
    r = run(world, "-H", h0, "env.diff")
    # (the session's earlier modules may have left other keys changed on the host: only these two are ours)
    changed = re.search(r"changed: ([A-Z_, ]+)", r.stdout)
    assert r.returncode == 1 and "added: FEATURE_FLAG" in r.stdout and changed, r.stdout
    assert "LOG_LEVEL" in changed[1].split(", "), r.stdout
    assert "DEBUG" not in r.stdout + r.stderr and SECRET not in r.stdout + r.stderr
    web_pid = sandbox.main_pid(0, "uavcrew", "web")
    load = Load(sandbox, 0, name="envpush").start()
    try:
        out = ok(run(world, "-H", h0, "env.push"))
    finally:
        stats = load.stop()
    assert failed(stats) == 0 and served(stats) > 0, json.dumps(stats)[:2000]
    assert "FEATURE_FLAG" in out and "restarted, healthy" in out and SECRET not in out
    for service in ("web", "api", "celery", "beat"):
        unit = sandbox.unit(0, "uavcrew", service)
        env = unit_env(sandbox, 0, unit)
        assert env["FEATURE_FLAG"] == "on" and env["LOG_LEVEL"] == "DEBUG", unit
    assert sandbox.main_pid(0, "uavcrew", "web") != web_pid
    assert sandbox.check(0, f"stat -c '%U %G %a' {ENV}").strip() == "root adonis 640"
    assert run(world, "-H", h0, "env.diff").returncode == 0
    log = sandbox.check(0, f"tail -n 1 {ROOT}/logs/deploys.jsonl")
    assert '"event": "env push"' in log and "FEATURE_FLAG" in log and "DEBUG" not in log


def test_set_of_a_tricky_value_reaches_the_units_exactly_and_unset_removes_it(sandbox, world):
    h0 = world["names"][0]
    r = run(world, "-H", h0, "env.set", "TRICKY_VALUE", input=TRICKY + "\n")
    ok(r)
    assert TRICKY not in r.stdout + r.stderr
    for unit in (sandbox.unit(0, "uavcrew", "web"), sandbox.unit(0, "uavcrew", "celery")):
        assert unit_env(sandbox, 0, unit)["TRICKY_VALUE"] == TRICKY, unit
    code = sandbox.check(0, "ps -eo args")
    assert "$HOME ${X}" not in code      # never in any process's argv
    ok(run(world, "-H", h0, "env.unset", "TRICKY_VALUE"))
    assert "TRICKY_VALUE" not in unit_env(sandbox, 0, sandbox.unit(0, "uavcrew", "web"))
    r = run(world, "-H", h0, "env.set", "TRICKY_VALUE=in-argv")
    assert r.returncode == 2 and "give the key alone" in r.stderr


def test_a_change_is_refused_while_a_deploy_holds_the_lock(sandbox, world):
    h0 = world["names"][0]
    holder = json.dumps({"by": "ana", "from": "elsewhere", "pid": 1, "token": "x", "operation": "deploy"})
    sandbox.check(0, f"install -d -o adonis -m 700 {ROOT}/.deploy-lock && echo '{holder}' "
                     f"> {ROOT}/.deploy-lock/owner.json")
    before = sandbox.check(0, f"sha256sum {ENV}")
    try:
        r = run(world, "-H", h0, "env.set", "LOCKED_OUT", input="1\n")
        assert r.returncode == 1 and "holds the lock: ana@elsewhere" in r.stderr
    finally:
        sandbox.check(0, f"rm -rf {ROOT}/.deploy-lock")
    assert sandbox.check(0, f"sha256sum {ENV}") == before


def test_exec_runs_in_the_live_release_with_its_env_and_returns_the_exit_status(sandbox, world):
    h0 = world["names"][0]
    r = run(world, "-H", h0, "exec", "--", "python", "-c",
            "import os, sys; print(os.getcwd(), os.environ['PROJECT_NAME'], sys.prefix); sys.exit(7)")
    assert r.returncode == 7, r.stdout + r.stderr
    cwd, project, prefix = r.stdout.split()[:3]
    live = sandbox.check(0, f"readlink -f {ROOT}/releases/current").strip()
    assert cwd == live and project == "uavcrew" and prefix == f"{live}/.venv"
    assert ok(run(world, "-H", h0, "exec", "--once", "--", "whoami")).strip() == "adonis"
    r = run(world, "-H", h0, "exec", "--", "no-such-program")
    assert r.returncode != 0 and "no-such-program" in r.stderr


def test_remove_then_setup_then_deploy_brings_the_project_back(sandbox, world):
    h1 = world["names"][1]
    releases = sandbox.check(1, f"ls {ROOT}/releases")
    out = ok(run(world, "-H", h1, "remove", "--project", "uavcrew"))
    assert "stopped and removed uavcrew-web-blue.service" in out
    for path in ("/etc/systemd/system/uavcrew-web-blue.service", "/etc/systemd/system/uavcrew-web-green.service",
                 "/etc/systemd/system/uavcrew-web.socket",
                 "/etc/sudoers.d/ayna-uavcrew", "/usr/local/lib/ayna-fab/env-uavcrew"):
        assert sandbox.run(1, f"test -e {path}")[0] != 0, path
    assert sandbox.run(1, "ss -ltn | grep -q ':8130 '")[0] != 0        # nobody listens any more
    assert sandbox.check(1, f"ls {ROOT}/releases") == releases          # kept
    assert "nothing to remove" in ok(run(world, "-H", h1, "remove", "--project", "uavcrew"))
    ok(run(world, "-H", h1, "setup"))
    ok(run(world, "-H", h1, "deploy"))
    assert sandbox.run(1, "curl -sf http://127.0.0.1:8130/health/")[0] == 0


def test_purge_asks_first_leaves_a_last_backup_and_setup_makes_it_anew(sandbox, world):
    h1 = world["names"][1]
    # Without a terminal nobody can read the question: refused, naming the flag that gives the yes.
    r = run(world, "-H", h1, "remove", "--project", "uavcrew", "--purge", input="y\n")
    assert r.returncode == 2 and "pass --yes" in r.stderr, r.stderr
    assert sandbox.run(1, "test -e /etc/systemd/system/uavcrew-web-blue.service")[0] == 0
    out = ok(run(world, "-H", h1, "remove", "--project", "uavcrew", "--purge", "--yes"))
    assert "last backup: uavcrew-" in out and "dropped database uavcrew" in out
    left = sandbox.check(1, f"cd {ROOT} && find . -mindepth 1 | sort").split()
    assert [p for p in left if not p.startswith("./shared/backups/")] == ["./shared", "./shared/backups"], left
    name = out.split("last backup: ")[1].split()[0]
    assert re.fullmatch(r"uavcrew-[0-9T]+Z-v[0-9]+\.dump", name) and f"./shared/backups/{name}" in left
    assert "uavcrew" in sandbox.check(1, f"pg_restore --list {ROOT}/shared/backups/{name}")
    assert sandbox.check(1, "runuser -u postgres -- psql -Atqc \"SELECT count(*) FROM pg_database "
                            "WHERE datname = 'uavcrew'\"").strip() == "0"
    ok(run(world, "-H", h1, "setup"))
    ok(run(world, "-H", h1, "deploy"))
    assert sandbox.run(1, "curl -sf http://127.0.0.1:8130/health/")[0] == 0
