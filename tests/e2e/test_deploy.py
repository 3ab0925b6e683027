"""Deploy, rollback, status and their failure paths, on a real sandbox host: one story, in order.

The demo project is copied into a throwaway git repository; each failure mode is
a branch, so `--ref` chooses the scenario. Every failure must leave `current` on
a complete, healthy release and the same release serving.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ayna_fab.remote import hostcall
from ayna_fab.sandbox import forwarder
from tests.e2e.conftest import DEMO, fab, write_inventory
from tests.polling import wait_until
from tests.prereqs import interruptible

pytestmark = pytest.mark.e2e
ROOT = "/opt/ayna/uavcrew"
SERVICES = ("web", "api", "celery", "beat")
UNITS = [f"uavcrew-{s}.service" for s in ("web-blue", "web-green", "api-blue", "api-green", "celery-blue",
                                          "celery-green", "beat")]


def live_units(sandbox) -> list[str]:
    """The unit that runs each service: its active slot (web, api, celery), or beat's."""
    return [sandbox.unit(0, "uavcrew", s) for s in SERVICES]


class Repo:
    """A git copy of the demo project that tests commit to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        shutil.copytree(DEMO, path, ignore=shutil.ignore_patterns(".venv", "__pycache__", "staticfiles"))
        self.git("init", "-q", "-b", "main")
        self.git("add", "-A")
        self.git("commit", "-qm", "uavcrew")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              check=True, capture_output=True, text=True).stdout.strip()

    def health_fails_under_unit(self, branch: str) -> None:
        """A branch whose web health fails only when systemd runs it (units get INVOCATION_ID):
        the pre-flip check passes, the live check does not."""
        self.git("checkout", "-q", "-b", branch, "main")
        health = self.path / "src/web/crew/health.py"
        text = health.read_text()
        marker = '"release": settings.AYNA_RELEASE["release"],'
        assert marker in text and "\nimport os\n" in text
        health.write_text(text.replace(
            marker, '"release": settings.AYNA_RELEASE["release"] if "INVOCATION_ID" not in os.environ else 1 / 0,', 1))
        self.git("commit", "-qam", "health fails under its unit")
        self.git("checkout", "-q", "main")

    def add_migration(self, name: str) -> None:
        """Commit a migration that changes nothing, after the latest one: a deploy then has a
        migration pending, so it backs the database up and migrates."""
        folder = self.path / "src/web/crew/migrations"
        latest = sorted(p.stem for p in folder.glob("[0-9][0-9][0-9][0-9]_*.py"))[-1]
        (folder / f"{int(latest[:4]) + 1:04d}_{name}.py").write_text(
            "from django.db import migrations\n\n\n"
            "class Migration(migrations.Migration):\n"
            f"    dependencies = [(\"crew\", \"{latest}\")]\n"
            "    operations = [migrations.RunPython(migrations.RunPython.noop, migrations.RunPython.noop)]\n")
        self.git("add", "-A")
        self.git("commit", "-qm", f"migration {name}")

    def mode(self, mode: str, branch: str | None = None, text: str | None = None) -> str:
        """Apply a demo failure/change mode and commit it (on a new branch from main, if given)."""
        if branch:
            self.git("checkout", "-q", "-b", branch, "main")
        argv = [sys.executable, str(self.path / "failure_modes.py"), mode, "--project-dir", str(self.path)]
        subprocess.run(argv + (["--text", text] if text else []), check=True, capture_output=True)
        self.git("add", "-A")
        self.git("commit", "-qm", mode)
        rev = self.git("rev-parse", "HEAD")
        if branch:
            self.git("checkout", "-q", "main")
        return rev


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = Repo(tmp_path_factory.mktemp("src") / "uavcrew")
    for mode in ("import-error", "health-500", "migration-fails", "bad-dependency"):
        r.mode(mode, branch=f"fail-{mode}")
    r.health_fails_under_unit("fail-health-under-unit")
    return r


@pytest.fixture(scope="module")
def inv(sandbox, repo, first_setup, tmp_path_factory):
    assert all(r.returncode == 0 for r in first_setup), [r.stderr for r in first_setup]
    return write_inventory(tmp_path_factory.mktemp("deploy") / "hosts.toml", sandbox, source=repo.path,
                           keep_releases=3)


def deploy(inv, *args):
    return fab("-H", "sandbox1", "deploy", *args, hosts_file=inv)


def current(sandbox) -> str:
    return sandbox.check(0, f"readlink {ROOT}/releases/current").strip()


def health(sandbox, service: str, slot: str | None = None) -> dict:
    """What the service's health answers on its port, or (slot) on that slot's own socket, asked as
    the deploy user."""
    port = {"web": 8130, "api": 8131}[service]
    path = {"web": "/health/", "api": "/health"}[service]
    own = f"--unix-socket /run/ayna-fab-probe/uavcrew-{service}-{slot}.sock " if slot else ""
    code, out, _ = sandbox.run(0, f"curl -s -m 5 {own}http://127.0.0.1:{port}{path}", user="adonis" if slot else "root")
    return json.loads(out) if out.strip().startswith("{") else {"raw": out, "exit": code}


def serving(sandbox) -> set[str]:
    return {health(sandbox, "web").get("release"), health(sandbox, "api").get("release")}


def process_dirs(sandbox) -> dict[str, set[str]]:
    """The release directory each running unit's processes run in (from their working directories)."""
    script = ("for u in " + " ".join(UNITS) + "; do cg=$(systemctl show -p ControlGroup --value $u); "
              '[ -n "$cg" ] || continue; '
              "for p in $(cat /sys/fs/cgroup/unified$cg/cgroup.procs); do "
              "echo $u $(readlink -f /proc/$p/cwd); done; done")
    found: dict[str, set[str]] = {}
    for line in sandbox.check(0, script).splitlines():
        unit, cwd = line.split()
        found.setdefault(unit, set()).add(cwd.removeprefix(f"{ROOT}/releases/").split("/")[0])
    return found


def heartbeat_after(sandbox, since: str) -> tuple[str, str] | None:
    q = (f"select worker_release || ' ' || beat_release from crew_heartbeat where created_at > '{since}' "
         "order by id desc limit 1")
    out = sandbox.check(0, f"cd / && runuser -u postgres -- psql -d uavcrew -tAc \"{q}\"").strip()
    return tuple(out.split()) if out else None


def wait_for_heartbeat(sandbox, release: str, since: str, timeout: float = 40) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = heartbeat_after(sandbox, since)
        if last == (release, release):
            return last
        time.sleep(1)
    raise AssertionError(f"no heartbeat from worker and beat of {release}; last: {last}")


def host_time(sandbox) -> str:
    return sandbox.check(0, "date -u '+%Y-%m-%d %H:%M:%S+00'").strip()


def listing(sandbox) -> str:
    """Every path under the project with size, mode and mtime, except what the running app
    itself keeps writing (beat's schedule, bytecode caches); waits for pending cleanups first."""
    sandbox.check(0, f"for i in $(seq 100); do ls -d {ROOT}/releases/.trash-* >/dev/null 2>&1 || exit 0; "
                     "sleep 0.1; done; exit 1")
    return sandbox.check(0, f"find {ROOT} \\( -path '*/.venv' -o -name __pycache__ -o -name 'celerybeat-schedule*' \\)"
                            f" -prune -o -printf '%p %s %m %T@\\n' | sort")


def assert_untouched(sandbox, release: str) -> None:
    assert current(sandbox) == release
    assert serving(sandbox) == {release}
    assert sandbox.check(0, f"test ! -e {ROOT}/.deploy-lock && echo free").strip() == "free"


def state_of(sandbox, release: str) -> str:
    return json.loads(sandbox.check(0, f"cat {ROOT}/releases/{release}/.ayna-release.json"))["state"]


# --- the story ---------------------------------------------------------------------------------

def arriving(inv, *args) -> tuple[subprocess.CompletedProcess, list[tuple[int, float, str]]]:
    """A deploy whose stdout is read as it comes: (the finished process, each line with the number
    of the read that brought it and the seconds since the start). AYNA_FAB_TRANSCRIPT names a file
    for the lines, timestamped (docs/progress.md shows one)."""
    import os
    started = time.monotonic()
    p = subprocess.Popen([sys.executable.replace("python", "fab"), "-H", "sandbox1", "deploy", *args],
                         cwd=Path(__file__).resolve().parents[2], env={**os.environ, "AYNA_FAB_HOSTS": str(inv)},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    lines, buffer, reads = [], b"", 0
    while chunk := os.read(p.stdout.fileno(), 65536):
        reads += 1
        at = time.monotonic() - started
        buffer += chunk
        *whole, buffer = buffer.split(b"\n")
        lines += [(reads, at, line.decode(errors="replace")) for line in whole]
    err = p.stderr.read().decode(errors="replace")
    p.wait()
    out = "".join(f"{line}\n" for _, _, line in lines) + buffer.decode(errors="replace")
    if os.environ.get("AYNA_FAB_TRANSCRIPT"):
        Path(os.environ["AYNA_FAB_TRANSCRIPT"]).write_text("".join(f"{at:7.2f}s  {line}\n" for _, at, line in lines))
    return subprocess.CompletedProcess(p.args, p.returncode, out, err), lines


def test_first_deploy(sandbox, inv, repo):
    since = host_time(sandbox)
    r, lines = arriving(inv)
    assert r.returncode == 0, r.stdout + r.stderr
    # Each step's line arrives as the step ends on the host: the install's (and uv's own lines) come
    # in an earlier read than collectstatic's, though both belong to one host call.
    read = {line.split()[1]: n for n, _, line in lines if line.startswith("[sandbox1] ") and len(line.split()) > 1}
    assert read["install"] < read["collectstatic"] < read["flip"], lines
    assert any(line.startswith("[sandbox1] install: ") for _, _, line in lines), lines   # uv speaks
    for step in ("lock + plan", "upload", "install", "check", "migrate", "collectstatic", "flip", "restart",
                 "verify", "health", "record"):
        assert f"[sandbox1] {step}" in r.stdout
    assert current(sandbox) == "v1"
    web, api = health(sandbox, "web"), health(sandbox, "api")
    assert web["release"] == api["release"] == "v1"
    assert web["revision"] == repo.git("rev-parse", "HEAD")
    assert web["database"] == "ok" and web["redis"] == "ok"
    assert process_dirs(sandbox) == {u: {"v1"} for u in live_units(sandbox)}
    assert sandbox.check(0, f"readlink -f {ROOT}/venv").strip() == f"{ROOT}/releases/v1/.venv"
    wait_for_heartbeat(sandbox, "v1", since)  # worker and beat run and do their job
    assert state_of(sandbox, "v1") == "active"


def test_redeploy_with_a_code_change_serves_the_new_release(sandbox, inv, repo):
    rev = repo.mode("code-change", text="Second edition")
    web_pid = sandbox.main_pid(0, "uavcrew", "web")
    since = host_time(sandbox)
    forwarder.request(sandbox.hosts[0].control, "reset")
    r = deploy(inv)
    assert r.returncode == 0, r.stdout + r.stderr
    # Only the change travelled (the web and API banners); every other file was copied from v1 on the host.
    assert "2 files sent, 57 copied from v1" in r.stdout
    # ... and the host program did not: v1's deploy left it in the deploy user's cache on the host,
    # and every call since sent the 1 kB form that runs it (the whole program is some 52 kB a call).
    sent = forwarder.request(sandbox.hosts[0].control, "stats")["bytes_up"]
    assert sent < 52_000, f"{sent} bytes sent for a two-file change"
    kept = sandbox.check(0, "ls ~adonis/.cache/ayna-fab").split()
    assert kept == [f"program-{hostcall._program()[1]}.z"], kept
    assert "the lock is unchanged: v1's venv, hard-linked" in r.stdout   # no uv run at all
    assert current(sandbox) == "v2"
    assert serving(sandbox) == {"v2"} and health(sandbox, "web")["revision"] == rev
    assert process_dirs(sandbox) == {u: {"v2"} for u in live_units(sandbox)}
    # gunicorn is restarted even though the dependencies did not change: a HUP would keep its master on
    # v1's interpreter and packages, which a later cleanup deletes (the socket unit loses no request).
    assert sandbox.main_pid(0, "uavcrew", "web") != web_pid
    assert "Second edition" in sandbox.check(0, "curl -s http://127.0.0.1:8130/")
    wait_for_heartbeat(sandbox, "v2", since)
    assert (state_of(sandbox, "v2"), state_of(sandbox, "v1")) == ("active", "previous")
    # Health asked the new slot on its own socket, never the shared port the old slot still served;
    # that socket is the deploy user's, and the live slot answers there.
    slot = sandbox.unit(0, "uavcrew", "web").rsplit("-", 1)[1].split(".")[0]
    journal = json.loads(sandbox.check(0, f"cat {ROOT}/activation.json"))
    assert {name: h["asked"] for name, h in journal["result"]["health"].items()} == {
        s: f"/run/ayna-fab-probe/uavcrew-{s}-{slot}.sock" for s in ("web", "api")}
    for service in ("web", "api"):
        assert health(sandbox, service, slot=slot)["release"] == "v2"


def test_deploy_that_changes_a_dependency_gets_a_new_venv_and_a_restart(sandbox, inv, repo):
    repo.mode("dependency-change")
    web_pid = sandbox.main_pid(0, "uavcrew", "web")
    r = deploy(inv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "dependencies changed" in r.stdout
    assert current(sandbox) == "v3" and serving(sandbox) == {"v3"}
    assert sandbox.main_pid(0, "uavcrew", "web") != web_pid
    has = "test -d {}/lib/python3.11/site-packages/humanize && echo yes || echo no"
    assert sandbox.check(0, has.format(f"{ROOT}/releases/v3/.venv")).strip() == "yes"
    assert sandbox.check(0, has.format(f"{ROOT}/releases/v2/.venv")).strip() == "no"  # old venv intact
    sandbox.check(0, f"{ROOT}/releases/v2/.venv/bin/python -c 'import django, celery'")


def test_rollback_restores_code_and_dependencies(sandbox, inv):
    r = fab("-H", "sandbox1", "rollback", hosts_file=inv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert current(sandbox) == "v2" and serving(sandbox) == {"v2"}
    assert sandbox.check(0, f"readlink -f {ROOT}/venv").strip() == f"{ROOT}/releases/v2/.venv"
    assert process_dirs(sandbox) == {u: {"v2"} for u in live_units(sandbox)}
    assert (state_of(sandbox, "v3"), state_of(sandbox, "v2")) == ("rolled-back", "active")


def test_rollback_to_a_named_release_and_refusals(sandbox, inv):
    r = fab("-H", "sandbox1", "rollback", "--to", "v1", hosts_file=inv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert current(sandbox) == "v1" and serving(sandbox) == {"v1"}
    missing = fab("-H", "sandbox1", "rollback", "--to", "v99", hosts_file=inv)
    assert missing.returncode == 2 and "there is no release v99" in missing.stderr and "v2 (" in missing.stderr
    hostile = fab("-H", "sandbox1", "rollback", "--to", "v1;reboot", hosts_file=inv)
    assert hostile.returncode == 2 and "is not a release name" in hostile.stderr
    assert_untouched(sandbox, "v1")
    # v2 was rolled away from by choice; it was healthy once, so it may be chosen again.
    assert state_of(sandbox, "v2") == "rolled-back"
    back = fab("-H", "sandbox1", "rollback", "--to", "v2", hosts_file=inv)
    assert back.returncode == 0, back.stderr
    assert current(sandbox) == "v2" and serving(sandbox) == {"v2"}


def test_a_bad_ref_is_refused_before_connecting(sandbox, inv):
    before = listing(sandbox)
    for ref, message in (("no-such-branch", "does not resolve to a commit"),
                         ("$(touch /tmp/pwned)", "is not a ref ayna-fab accepts"),
                         ("--upload-pack=x", "is not a ref ayna-fab accepts")):
        r = deploy(inv, "--ref", ref)
        assert r.returncode == 2, (ref, r.stderr)
        assert message in r.stderr and "[sandbox1]" not in r.stdout
    assert listing(sandbox) == before
    assert_untouched(sandbox, "v2")


@pytest.mark.parametrize("branch,step", [("fail-bad-dependency", "install"), ("fail-import-error", "check"),
                                         ("fail-migration-fails", "migrate")])
def test_a_failure_before_the_flip_leaves_the_site_untouched(sandbox, inv, branch, step):
    migrations = sandbox.check(0, "cd / && runuser -u postgres -- psql -d uavcrew -tAc "
                                  "'select count(*) from django_migrations'")
    r = deploy(inv, "--ref", branch)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{step}: deploy of v" in r.stderr and "the live site is untouched (still v2)" in r.stderr
    assert f"[sandbox1] {step}" in r.stdout and "FAILED" in r.stdout
    assert_untouched(sandbox, "v2")
    failed = r.stderr.split("deploy of ")[1].split()[0]
    assert state_of(sandbox, failed) == "failed"
    assert sandbox.check(0, "cd / && runuser -u postgres -- psql -d uavcrew -tAc "
                            "'select count(*) from django_migrations'") == migrations


def test_deploy_json_on_failure_is_one_document(sandbox, inv):
    live = current(sandbox)
    r = deploy(inv, "--json", "--ref", "fail-migration-fails")
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads(r.stdout)   # stdout is the document alone; people's lines went to stderr
    assert (doc["operation"], doc["project"], doc["ok"], doc["exit_code"]) == ("deploy", "uavcrew", False, 1)
    assert (doc["failed_step"], doc["failed_host"]) == ("migrate", "sandbox1")
    host = doc["hosts"]["sandbox1"]
    assert (host["outcome"], host["failed_step"], host["serving"]) == ("failed", "migrate", live)
    assert [s["name"] for s in host["steps"] if not s["ok"]] == ["migrate"]
    assert "[sandbox1] migrate" in r.stderr and doc["error"]["message"]
    assert_untouched(sandbox, live)


def test_an_unhealthy_release_is_refused_before_it_takes_traffic(sandbox, inv):
    restarts = sandbox.check(0, "systemctl show -p InvocationID --value " + " ".join(UNITS))
    r = deploy(inv, "--ref", "fail-health-500")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "failed its pre-flip check, so it never took traffic" in r.stderr and "status 500" in r.stderr
    assert "the live site is untouched (still v2)" in r.stderr and "[sandbox1] preflight" in r.stdout
    assert "[sandbox1] flip" not in r.stdout
    assert_untouched(sandbox, "v2")
    assert sandbox.check(0, "systemctl show -p InvocationID --value " + " ".join(UNITS)) == restarts  # no restart


def test_unhealthy_after_the_flip_rolls_back_by_itself(sandbox, inv):
    # Healthy on its own (the pre-flip check passes), failing under its unit: only production shows it.
    r = deploy(inv, "--ref", "fail-health-under-unit")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "failed after the flip" in r.stderr and "rolled back to v2, which is serving and healthy" in r.stderr
    assert "status 500" in r.stderr
    assert "[sandbox1] restore" in r.stdout
    assert_untouched(sandbox, "v2")
    assert process_dirs(sandbox) == {u: {"v2"} for u in live_units(sandbox)}
    log = sandbox.check(0, f"tail -n 1 {ROOT}/logs/deploys.jsonl")
    assert json.loads(log)["result"] == "failed" and json.loads(log)["restored"] == "v2"


def test_a_failed_release_is_refused_as_a_rollback_target(sandbox, inv):
    failed = sandbox.check(0, f"grep -l '\"state\": \"failed\"' {ROOT}/releases/v*/.ayna-release.json | head -1")
    name = failed.split("/")[-2]
    r = fab("-H", "sandbox1", "rollback", "--to", name, hosts_file=inv)
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{name} is failed" in r.stderr and "candidates: " in r.stderr and "v1" in r.stderr
    assert_untouched(sandbox, "v2")


def test_two_deploys_at_once_exactly_one_proceeds(sandbox, inv):
    env = {"AYNA_FAB_HOSTS": str(inv)}
    import os
    procs = [subprocess.Popen([sys.executable.replace("python", "fab"), "-H", "sandbox1", "deploy"],
                              cwd=Path(__file__).resolve().parents[2], env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(300), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, _, err in results if code == 1)
    assert "another deploy holds the lock" in loser and "root@" in loser
    assert serving(sandbox) == {current(sandbox)}


def test_ctrl_c_in_the_middle_releases_the_lock_and_leaves_the_site_serving(sandbox, inv, repo):
    live = current(sandbox)
    repo.mode("code-change", text="Interrupted edition")
    import os
    proc = subprocess.Popen([sys.executable.replace("python", "fab"), "-H", "sandbox1", "deploy"],
                            cwd=Path(__file__).resolve().parents[2], env={**os.environ, "AYNA_FAB_HOSTS": str(inv)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    for line in proc.stdout:
        if "[sandbox1] upload" in line:
            break

    def preparing() -> bool:   # the host program marks its prepare call in the lock while it runs
        assert proc.poll() is None, "fab ended before its prepare call: " + proc.stderr.read()
        return sandbox.run(0, f"grep -qs '\"what\": \"prepare\"' {ROOT}/.deploy-lock/worker-*.json")[0] == 0

    assert wait_until(preparing, 180, interval=0.02), "the prepare call never began"
    proc.send_signal(signal.SIGINT)   # now inside prepare (install, check, migrate)
    code = proc.wait(120)
    err = proc.stderr.read()
    assert code == 1, err
    assert "interrupted" in err
    assert_untouched(sandbox, live)


def test_status_json_matches_the_host(sandbox, inv, repo):
    r = fab("-H", "sandbox1", "status", "--json", hosts_file=inv)
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    live = current(sandbox)
    meta = json.loads(sandbox.check(0, f"cat {ROOT}/releases/{live}/.ayna-release.json"))
    assert row["release"] == live and row["revision"] == meta["revision"]
    running = live_units(sandbox)
    assert row["units"] == {u: "active" if u in running else "inactive" for u in UNITS}
    assert row["health"] == {"web": "ok", "api": "ok"}
    assert row["lock"] is None and row["drift"] is False
    on_host = sandbox.check(0, f"ls -d {ROOT}/releases/v* | wc -l").strip()
    assert row["releases"] == int(on_host)
    assert row["states"][live] == "active"


def test_cleanup_keeps_good_releases_and_failed_ones_do_not_push_them_out(sandbox, inv, repo):
    for _ in range(3):
        repo.mode("code-change", text=f"Edition {time.time()}")
        assert deploy(inv).returncode == 0
    assert deploy(inv, "--ref", "fail-import-error").returncode == 1
    r = fab("-H", "sandbox1", "releases", "--json", hosts_file=inv)
    states = json.loads(r.stdout)[0]["releases"]
    good = [n for n, s in states.items() if s in ("active", "previous", "good")]
    failed = [n for n, s in states.items() if s not in ("active", "previous", "good")]
    assert len(good) == 3, states   # keep_releases = 3 good ones, failures not counted
    assert len(failed) <= 2, states  # the newest failure is kept until the next cleanup
    assert states[current(sandbox)] == "active" and "previous" in states.values()
    ok = deploy(inv)
    assert ok.returncode == 0
    states = json.loads(fab("-H", "sandbox1", "releases", "--json", hosts_file=inv).stdout)[0]["releases"]
    assert sum(s in ("active", "previous", "good") for s in states.values()) == 3
    assert sum(s not in ("active", "previous", "good") for s in states.values()) == 1, states


def test_a_dry_run_changes_nothing(sandbox, inv, repo):
    repo.mode("code-change", text="Dry edition")
    before = listing(sandbox)
    r = deploy(inv, "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    for sub in ("stage", "prepare", "activate", "finish"):
        assert f"ayna-host {sub} " in r.stdout
    assert "nothing was changed" in r.stdout
    after = listing(sandbox)
    import difflib
    assert after == before, "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm=""))


def test_deploy_and_rollback_json_on_success(sandbox, inv, repo):
    before = current(sandbox)
    repo.mode("code-change", text="JSON edition")
    r = deploy(inv, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["exit_code"] == 0 and doc["revision"] == repo.git("rev-parse", "HEAD")
    host = doc["hosts"]["sandbox1"]
    assert host["outcome"] == "live" and host["serving"] == doc["release"] == current(sandbox)
    assert {"upload", "install", "flip", "health", "record"} <= {s["name"] for s in host["steps"]}
    back = fab("-H", "sandbox1", "rollback", "--json", hosts_file=inv)
    assert back.returncode == 0, back.stdout + back.stderr
    rolled = json.loads(back.stdout)
    assert (rolled["operation"], rolled["ok"], rolled["release"]) == ("rollback", True, before)
    assert rolled["hosts"]["sandbox1"]["previous"] == doc["release"] and current(sandbox) == before
