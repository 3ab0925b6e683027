"""Day-two operations on real sandbox hosts: units, services, logs, manage.py, shell, migrate,
backups and restores. The demo project is deployed to both hosts first."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest

from tests.polling import wait_until
from tests.prereqs import interruptible

from tests.e2e.conftest import FAB, REPO, fab, write_inventory
from tests.e2e.test_deploy import Repo

pytestmark = pytest.mark.e2e
ROOT = "/opt/ayna/uavcrew"
BACKUPS = f"{ROOT}/shared/backups"
SERVICES = ("web", "api", "celery", "beat")
UNITS = [f"uavcrew-{s}.service" for s in ("web-blue", "web-green", "api-blue", "api-green", "celery-blue",
                                          "celery-green", "beat")]
NAME_RE = re.compile(r"uavcrew-[0-9]{8}T[0-9]{6}Z-(v[0-9]+|none)\.dump")

# Runs the repository's fabfile with the ops tasks added, for as long as fabfile.py does not
# register them itself (and fabric.yaml does not yet name the executor that takes `--`).
SHIM = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("ayna_fab_repository_fabfile", {str(REPO / "fabfile.py")!r})
repository = importlib.util.module_from_spec(spec)
spec.loader.exec_module(repository)
from ayna_fab.cli.tasks import daytwo as ops
ns = repository.ns
for t in ops.TASKS:
    if t.name not in ns.tasks:
        ns.add_task(t)
"""
EXECUTOR = "tasks:\n  executor_class: ayna_fab.cli.executor.Executor\n"


@pytest.fixture(scope="module")
def fab_root(tmp_path_factory) -> list[str]:
    """fab's -r argument: none when the repository's fabfile already has the ops tasks."""
    listing = subprocess.run([str(FAB), "--list"], cwd=REPO, capture_output=True, text=True).stdout.split()
    if "manage" in listing and "ayna_fab.cli.executor.Executor" in (REPO / "fabric.yaml").read_text():
        return []
    shim = tmp_path_factory.mktemp("fabfile")
    (shim / "fabfile.py").write_text(SHIM)
    (shim / "fabric.yaml").write_text(EXECUTOR)
    return ["-r", str(shim)]


@pytest.fixture(scope="module")
def inv(sandbox, first_setup, tmp_path_factory):
    assert all(r.returncode == 0 for r in first_setup), [r.stderr for r in first_setup]
    repo = Repo(tmp_path_factory.mktemp("ops-src") / "uavcrew")
    path = write_inventory(tmp_path_factory.mktemp("ops") / "hosts.toml", sandbox, source=repo.path)
    for hs in sandbox.hosts:
        r = fab("-H", hs.name, "deploy", hosts_file=path)
        assert r.returncode == 0, r.stdout + r.stderr
    return path


@pytest.fixture(scope="module")
def ops(inv, fab_root):
    def run(*args: str, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return fab(*fab_root, *args, hosts_file=inv, input=input, timeout=timeout)
    return run


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def states(sandbox, index: int = 0) -> list[str]:
    """Each service's state: its running slot's (web, api, celery) or beat's."""
    live = [sandbox.unit(index, "uavcrew", s) for s in SERVICES]
    code, out, _ = sandbox.run(index, "systemctl is-active " + " ".join(live))
    return out.split()


def running(sandbox, index: int = 0) -> list[str]:
    """The units that run: one slot of each slotted service, and beat."""
    code, out, _ = sandbox.run(index, "systemctl is-active " + " ".join(UNITS))
    return [u for u, state in zip(UNITS, out.split()) if state == "active"]


def main_pid(sandbox, unit: str, index: int = 0) -> str:
    return sandbox.check(index, f"systemctl show -p MainPID --value {unit}").strip()


def current(sandbox, index: int = 0) -> str:
    return sandbox.check(index, f"readlink {ROOT}/releases/current").strip()


def backups(sandbox, index: int = 0) -> list[str]:
    out = sandbox.check(index, f"ls {BACKUPS}")
    return sorted(n for n in out.split() if NAME_RE.fullmatch(n))


def crew(sandbox, index: int = 0) -> list[str]:
    out = sandbox.check(index, "cd / && runuser -u postgres -- psql -d uavcrew -tAc "
                               "'select name from crew_crewmember order by id'")
    return out.split("\n")


def add_crew(ops, name: str) -> None:
    ok(ops("-H", "sandbox1", "manage", "--", "shell", "-c",
           f"from crew.models import CrewMember; CrewMember.objects.create(name={name!r})"))


# --- units and their facts --------------------------------------------------------------------

def test_stop_start_and_restart_change_the_units_states(sandbox, ops):
    out = ok(ops("-H", "sandbox1", "stop"))
    assert states(sandbox) == ["inactive"] * 4
    assert all(f"[sandbox1] {u}" in out for u in UNITS) and "inactive (dead)" in out
    ok(ops("-H", "sandbox1", "start"))
    assert states(sandbox) == ["active"] * 4
    assert len(running(sandbox)) == 4     # one slot of each: the other's link is not the live release
    web_unit, celery_unit = sandbox.unit(0, "uavcrew", "web"), sandbox.unit(0, "uavcrew", "celery")
    web, celery = main_pid(sandbox, web_unit), main_pid(sandbox, celery_unit)
    out = ok(ops("-H", "sandbox1", "restart", "--service", "web"))
    assert main_pid(sandbox, web_unit) != web and main_pid(sandbox, celery_unit) == celery
    assert f"pid {main_pid(sandbox, web_unit)}" in out and len(running(sandbox)) == 4
    r = ops("-H", "sandbox1", "stop", "--service", "db")
    assert r.returncode == 2 and "its services: web, api, celery, beat" in r.stderr
    assert states(sandbox) == ["active"] * 4


def test_services_show_state_main_pid_memory_and_uptime(sandbox, ops):
    rows = json.loads(ok(ops("-H", "sandbox", "services", "--json")))
    assert [(r["host"], r["unit"]) for r in rows] == [(h, u) for h in ("sandbox1", "sandbox2") for u in UNITS]
    for h in ("sandbox1", "sandbox2"):   # one slot of each slotted service runs, and beat
        up = sorted(r["unit"] for r in rows if r["host"] == h and r["active"] == "active")
        assert "uavcrew-beat.service" in up and len({u.split("-")[1] for u in up}) == len(up) == 4, up
    for r in rows:
        index = 0 if r["host"] == "sandbox1" else 1
        if r["active"] != "active":
            assert (r["active"], r["pid"]) == ("inactive", None)
            continue
        assert r["sub"] == "running"
        assert r["pid"] == int(main_pid(sandbox, r["unit"], index))
        assert r["memory"] > 1_000_000 and r["uptime"] > 0
    table = ok(ops("-H", "sandbox1", "services"))
    lines = table.splitlines()
    assert lines[0].split("\t") == ["host", "unit", "state", "pid", "memory", "uptime"]
    assert len([line for line in lines[1:] if re.fullmatch(
        r"sandbox1\tuavcrew-[\w-]+\.service\tactive \(running\)\t\d+\t[\d.]+ MiB\t\d+[smhd].*", line)]) == 4, table
    assert len([line for line in lines[1:] if re.fullmatch(
        r"sandbox1\tuavcrew-\w+-(blue|green)\.service\tinactive \(dead\)\t-\t-\t-", line)]) == 3, table


# --- logs ----------------------------------------------------------------------------------------

def test_logs_from_several_hosts_are_prefixed_with_the_host(sandbox, ops):
    lines = ok(ops("-H", "sandbox", "logs", "--lines", "5")).splitlines()
    assert lines and all(line.startswith(("[sandbox1] ", "[sandbox2] ")) for line in lines)
    assert {line.split("]")[0] for line in lines} == {"[sandbox1", "[sandbox2"}
    web = ok(ops("-H", "sandbox1", "logs", "--service", "web", "--since", "-30min"))
    assert "gunicorn" in web and "celery[" not in web
    r = ops("-H", "sandbox1", "logs", "--since", "$(id)")
    assert r.returncode == 2 and "is not a time journalctl knows" in r.stderr


def test_logs_follow_every_host_until_ctrl_c(sandbox, inv, fab_root):
    env = {**os.environ, "AYNA_FAB_HOSTS": str(inv)}
    p = subprocess.Popen([str(FAB), *fab_root, "-H", "sandbox", "logs", "--follow", "--service", "celery,beat",
                          "--lines", "1"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=interruptible)
    # beat schedules a heartbeat every 5 seconds on each host: wait until each host's lines came
    # (a busy machine may take longer than one period), then Ctrl-C
    lines: list[str] = []

    def read():
        for line in p.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(
            sum(line.startswith(f"[{h}]") for line in list(lines)) >= 2 for h in ("sandbox1", "sandbox2")):
        time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    p.wait(timeout=30)
    reader.join(10)
    err, out = p.stderr.read(), "".join(lines)
    assert p.returncode == 0, err
    hosts = [line.split("]")[0] for line in out.splitlines()]
    assert hosts.count("[sandbox1") >= 2 and hosts.count("[sandbox2") >= 2, out
    for index in (0, 1):     # closing the connection ended journalctl on the host
        assert wait_until(lambda: sandbox.run(index, "pgrep -x journalctl")[0] == 1, 30, interval=0.2), \
            f"journalctl still runs on host {index + 1}"


# --- manage.py and the shell ---------------------------------------------------------------------

def test_manage_runs_any_command_in_the_live_release_with_its_environment(sandbox, ops):
    out = ok(ops("-H", "sandbox1", "manage", "--", "showmigrations", "crew"))
    assert "[X] 0001_initial" in out
    out = ok(ops("-H", "sandbox1", "manage", "--", "shell", "-c",
                 "import os; print(os.getcwd(), os.environ['WEB_PORT'], os.environ['DJANGO_SETTINGS_MODULE'])"))
    assert f"{ROOT}/releases/{current(sandbox)}/src/web 8130 config.settings.production" in out
    out = ok(ops("-H", "sandbox", "manage", "--", "check"))
    assert "[sandbox1] System check identified no issues" in out and "[sandbox2] System check" in out
    r = ops("-H", "sandbox1", "manage", "--", "nosuchcommand")
    assert r.returncode == 1 and "manage.py nosuchcommand exited 1" in r.stderr
    r = ops("-H", "sandbox1", "services", "--", "id")
    assert r.returncode == 2 and "runs no raw commands" in r.stderr


def test_shell_is_django_on_a_terminal(ops):
    out = ok(ops("-H", "sandbox1", "shell", input="print(40+2)\nfrom django.conf import settings\n"
                                                  "print(settings.SETTINGS_MODULE)\nexit()\n"))
    # 42 is the REPL's answer, never the echo of what was typed (40+2). When the first line is
    # read before readline takes the terminal over, the terminal echoed it and the answer follows
    # the prompt on one line (">>> 42"); otherwise readline redraws the line and 42 stands alone.
    assert re.search(r"^(?:>>> )?42\r?$", out, re.M) and "config.settings.production" in out and ">>> " in out


# --- migrate and backups -------------------------------------------------------------------------

def test_migrate_takes_a_backup_first(sandbox, ops):
    before = backups(sandbox)
    out = ok(ops("-H", "sandbox1", "migrate"))
    new = sorted(set(backups(sandbox)) - set(before))
    assert len(new) == 1 and new[0].endswith(f"-{current(sandbox)}.dump")
    assert re.search(rf"^\[sandbox1\] backup +{new[0]} \([\d.]+ KiB\)$", out, re.M)
    assert out.index(new[0]) < out.index("Operations to perform")
    assert "No migrations to apply" in out and f"backup before it: {new[0]}" in out


def test_a_backup_is_private_named_by_time_and_release_and_old_ones_are_pruned(sandbox, ops):
    stale = [f"uavcrew-201901{d:02d}T000000Z-v1.dump" for d in range(1, 13)]
    sandbox.check(0, f"cd {BACKUPS} && touch {' '.join(stale)} skybookus-20190101T000000Z-v1.dump notes.txt "
                     "&& chown adonis: * && chmod 600 *")
    before = backups(sandbox)
    started = int(sandbox.check(0, "date -u +%s"))
    out = ok(ops("-H", "sandbox1", "backup"))
    name = NAME_RE.search(out).group(0)
    assert name.endswith(f"-{current(sandbox)}.dump")
    taken = datetime.strptime(name.split("-")[1], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert abs(taken.timestamp() - started) < 60                 # the host's time, in UTC
    assert sandbox.check(0, f"stat -c '%a %U' {BACKUPS}/{name}").strip() == "600 adonis"
    assert "uavcrew" in sandbox.check(0, f"runuser -u adonis -- pg_restore --list {BACKUPS}/{name}")
    kept = backups(sandbox)                               # names sort by their time
    assert kept == sorted(before + [name])[-10:] and stale[0] not in kept
    rest = sandbox.check(0, f"ls {BACKUPS}").split()
    assert "notes.txt" in rest and "skybookus-20190101T000000Z-v1.dump" in rest
    assert "sandbox-only-db-password" not in out
    listing = ok(ops("-H", "sandbox1", "backup", "--list"))
    assert f"sandbox1\t{name}\t{current(sandbox)}\t" in listing and "\t600" in listing
    sandbox.check(0, f"cd {BACKUPS} && rm -f uavcrew-2019* skybookus-2019* notes.txt")


def test_restore_brings_back_the_data_of_the_backup_and_only_that(sandbox, ops):
    tag = uuid.uuid4().hex[:8]
    add_crew(ops, f"before-{tag}")
    name = NAME_RE.search(ok(ops("-H", "sandbox1", "backup"))).group(0)
    add_crew(ops, f"after-{tag}")
    assert {f"before-{tag}", f"after-{tag}"} <= set(crew(sandbox))
    out = ok(ops("-H", "sandbox1", "restore", "--backup", name, "--yes"))
    names = crew(sandbox)
    assert f"before-{tag}" in names and f"after-{tag}" not in names
    assert states(sandbox) == ["active"] * 4
    assert f"restored {name}" in out and "to undo: fab -H sandbox1 restore --backup uavcrew-" in out
    health = sandbox.check(0, "curl -s -m 10 --retry 20 --retry-connrefused --retry-delay 1 "
                              "http://127.0.0.1:8130/health/")
    assert json.loads(health)["database"] == "ok"
    assert sandbox.check(0, f"test -e {ROOT}/.deploy-lock && echo held || echo free").strip() == "free"


def test_restore_without_a_terminal_changes_nothing_unless_given_yes(sandbox, ops):
    name = backups(sandbox)[-1]
    add_crew(ops, "still-here")
    count, pid = len(backups(sandbox)), sandbox.main_pid(0, "uavcrew", "web")
    for answer in ("y\n", ""):   # no terminal: nothing asked, a piped answer never taken for a yes
        r = ops("-H", "sandbox1", "restore", "--backup", name, input=answer)
        assert r.returncode == 2 and "needs a yes" in r.stderr and "pass --yes" in r.stderr
    assert "still-here" in crew(sandbox) and len(backups(sandbox)) == count and sandbox.main_pid(0, "uavcrew", "web") == pid
    r = ops("-H", "sandbox1", "restore", "--backup", "../../etc/passwd", "--yes")
    assert r.returncode == 2 and "is not a backup name" in r.stderr
    r = ops("-H", "sandbox1", "restore", "--backup", "uavcrew-20000101T000000Z-v1.dump", "--yes")
    assert r.returncode == 2 and f"there: {backups(sandbox)[-1]}" in r.stderr


def test_migrate_and_restore_wait_for_a_deploy_that_holds_the_lock(sandbox, ops):
    holder = json.dumps({"by": "ana", "from": "elsewhere", "pid": 1, "token": "x", "message": "hotfix"})
    sandbox.check(0, f"install -d -o adonis -m 700 {ROOT}/.deploy-lock && echo '{holder}' "
                     f"> {ROOT}/.deploy-lock/owner.json")
    try:
        count = len(backups(sandbox))
        for args in (("migrate",), ("restore", "--backup", "latest", "--yes")):
            r = ops("-H", "sandbox1", *args)
            assert r.returncode == 1 and "holds the lock: ana@elsewhere" in r.stderr and "'hotfix'" in r.stderr
        assert len(backups(sandbox)) == count and states(sandbox) == ["active"] * 4
    finally:
        sandbox.check(0, f"rm -rf {ROOT}/.deploy-lock")
