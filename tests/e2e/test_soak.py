"""Soak: steady load on web and api while a host goes through many routine operations, with
keep_releases = 2 so cleanup deletes releases all along, a deploy refused at its pre-flip check and
one that fails after the flip (its worker will not start) and rolls itself back. No request may
fail, no user may see a broken release, and after every step every process of every unit uses
only the live release's files. The load goes to the ports and, as users meet the site, through
Caddy over HTTPS (tls = "internal", checked against its root certificate); failures are counted
per path.

Loopback only, bounded: the load runs on the sandbox host itself, stops on a stop file, after 15
minutes, or after 300,000 requests.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import fab, write_inventory
from ayna_fab.provision import caddyfile
from tests.e2e.load import URLS, Load, failed, failed_by_path, releases_mapped, releases_seen, served
from tests.e2e.test_deploy import Repo
from tests.e2e.test_faults import worker_fails_under_unit
from tests.e2e.test_proxy import env_file

pytestmark = pytest.mark.e2e
ROOT = "/opt/ayna/uavcrew"
UNITS = [f"uavcrew-{s}.service" for s in ("web-blue", "web-green", "api-blue", "api-green", "celery-blue",
                                          "celery-green", "beat")]
HOST = 1    # sandbox2: test_deploy's story runs on sandbox1
DOMAIN = "uavcrew.test"
THROUGH_CADDY = [f"https://{DOMAIN}/health/", f"https://{DOMAIN}/api/health"]


@pytest.fixture(scope="module")
def soak(sandbox, first_setup, tmp_path_factory):
    assert all(r.returncode == 0 for r in first_setup), [r.stderr for r in first_setup]
    repo = Repo(tmp_path_factory.mktemp("soaksrc") / "uavcrew")
    repo.mode("health-500", branch="broken")
    worker_fails_under_unit(repo, "worker-fails")   # web and api healthy; the worker exits under systemd
    folder = tmp_path_factory.mktemp("soak")
    inv = write_inventory(folder / "hosts.toml", sandbox, source=repo.path, keep_releases=2,
                          env_file=env_file(folder, "uavcrew", 8130),
                          extra_project=f'domains = ["{DOMAIN}"]\napi_prefix = "/api"\ntls = "internal"')
    name = sandbox.hosts[HOST].name

    def run(*args):
        return fab("-H", name, *args, hosts_file=inv)

    r = run("setup", "--force-env")   # Caddy in front of uavcrew; the .env allows its domain
    assert r.returncode == 0, r.stdout + r.stderr
    sandbox.check(HOST, f"grep -q ' {DOMAIN}$' /etc/hosts || echo '127.0.0.1 {DOMAIN}' >> /etc/hosts")

    r = run("deploy")   # whatever the host had before: this repository's first release, before any load
    assert r.returncode == 0, r.stdout + r.stderr
    return sandbox, repo, run


def live(sandbox) -> str:
    return sandbox.check(HOST, f"readlink {ROOT}/releases/current").strip()


def only_live_release_in_use(sandbox, step: str) -> None:
    want = live(sandbox)
    deadline = time.monotonic() + 30   # a recycled worker may still be on its way out
    while True:
        mapped = releases_mapped(sandbox, HOST, ROOT, UNITS)
        stray = {proc: used for proc, used in mapped.items() if used != [want]}
        if not stray or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert mapped and not stray, f"after {step}: processes using other releases than {want}: {stray}"


def test_routine_operations_under_load_lose_no_request(soak):
    sandbox, repo, run = soak
    load = Load(sandbox, HOST, "soak", urls=URLS + THROUGH_CADDY, cafile=caddyfile.ROOT_CERT).start()
    time.sleep(3)   # pacing: the load runs a while before the first deploy; no verdict waits on it
    steps = []
    try:
        for i in range(6):
            repo.mode("code-change", text=f"Soak edition {i}")
            r = run("deploy")
            assert r.returncode == 0, r.stdout + r.stderr
            steps.append(f"code-only deploy {i + 1}: {live(sandbox)}")
            only_live_release_in_use(sandbox, steps[-1])
        repo.mode("dependency-change")
        r = run("deploy")
        assert r.returncode == 0 and "dependencies changed" in r.stdout, r.stdout + r.stderr
        steps.append(f"dependency-changing deploy: {live(sandbox)}")
        only_live_release_in_use(sandbox, steps[-1])

        before = live(sandbox)
        r = run("deploy", "--ref", "broken")
        assert r.returncode == 1 and "failed its pre-flip check" in r.stderr, r.stdout + r.stderr
        states = json.loads(run("releases", "--json").stdout)[0]["releases"]
        broken = max((n for n, s in states.items() if s == "failed"), key=lambda n: int(n[1:]))
        assert live(sandbox) == before
        steps.append(f"deploy refused at its pre-flip check: {broken}")
        only_live_release_in_use(sandbox, steps[-1])

        r = run("rollback")
        assert r.returncode == 0, r.stdout + r.stderr
        steps.append(f"manual rollback: {before} -> {live(sandbox)}")
        only_live_release_in_use(sandbox, steps[-1])

        before = live(sandbox)
        r = run("deploy", "--ref", "worker-fails")
        assert r.returncode == 1 and "failed after the flip" in r.stderr, r.stdout + r.stderr
        assert f"rolled back to {before}, which is serving and healthy" in r.stderr, r.stdout + r.stderr
        assert live(sandbox) == before
        steps.append(f"deploy failed after the flip, rolled back by itself to {before}")
        only_live_release_in_use(sandbox, steps[-1])

        main_pid = sandbox.main_pid(HOST, "uavcrew", "web")
        workers = sandbox.check(HOST, f"pgrep -P {main_pid}").split()
        assert workers
        sandbox.check(HOST, f"kill -TERM {' '.join(workers)}")   # each finishes its request, then a new one starts
        time.sleep(5)
        steps.append("web workers recycled")
        only_live_release_in_use(sandbox, steps[-1])
    finally:
        stats = load.stop()
    print("\n".join(steps))
    print(json.dumps({k: v for k, v in stats.items() if k != "failures"}, indent=1))
    print("failed requests per path:", json.dumps(failed_by_path(stats)))
    assert served(stats) > 500, stats
    assert all(stats[url]["ok"] > 100 for url in THROUGH_CADDY), stats
    assert failed(stats) == 0, stats["failures"]
    assert broken not in releases_seen(stats), "a user saw the broken release"
