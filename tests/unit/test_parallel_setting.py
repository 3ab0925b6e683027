"""The parallelism setting: hosts.toml's `parallel` ([defaults]) or --parallel decides how many
hosts are connected to, worked on and queried at once, and a bad value stops a command before
any connection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ayna_fab.cli.tasks import common, release
from ayna_fab.config.model import DEFAULT_PARALLEL, load
from ayna_fab.errors import UsageError
from ayna_fab.ops import envpush, rollback, status

REPO = Path(__file__).resolve().parents[2]
FAB = str(Path(sys.executable).with_name("fab"))

# 192.0.2.x is TEST-NET-1: nothing answers there, so a command that tried to connect would not
# end with a usage error at once.
INVENTORY = """\
[defaults]
{defaults}
[projects.uavcrew]
source = "../uavcrew"
env = "production"

[hosts.far]
hostname = "192.0.2.1"
projects = ["uavcrew"]

[hosts.other]
hostname = "192.0.2.2"
projects = ["uavcrew"]
"""


def inventory(tmp_path: Path, defaults: str = "") -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(INVENTORY.format(defaults=defaults))
    return path


def fab(*args: str, hosts_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run([FAB, *args], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "AYNA_FAB_HOSTS": str(hosts_file)})


class Stop(Exception):
    """Raised where a connection would be opened: the test has seen what it needed."""


def test_the_default_is_eight_hosts_at_once(tmp_path):
    assert DEFAULT_PARALLEL == 8
    assert load(inventory(tmp_path)).defaults.parallel == 8


def test_hosts_toml_sets_it_and_the_flag_overrides_it(tmp_path, monkeypatch):
    monkeypatch.setenv("AYNA_FAB_HOSTS", str(inventory(tmp_path, "parallel = 3")))
    cfg = common.load()
    assert cfg.defaults.parallel == 3 and common.with_parallel(cfg, None) is cfg
    assert common.with_parallel(cfg, "20").defaults.parallel == 20
    assert common.with_parallel(cfg, 5).defaults.parallel == 5


@pytest.mark.parametrize("flag", ["0", "-1", "x", "2.5", ""])
def test_a_bad_flag_is_a_usage_error_that_says_what_to_give(tmp_path, flag):
    with pytest.raises(UsageError, match="--parallel .*: give a whole number of hosts, 1 or more") as e:
        common.with_parallel(load(inventory(tmp_path)), flag)
    assert e.value.hint == "--parallel 8"


@pytest.mark.parametrize("task", ["deploy", "rollback", "status", "history"])
def test_a_bad_flag_is_refused_before_any_connection(tmp_path, task):
    r = fab("-H", "far,other", task, "--parallel", "0", hosts_file=inventory(tmp_path))
    assert r.returncode == 2, r.stderr
    assert "--parallel '0': give a whole number of hosts, 1 or more" in r.stderr


def test_a_bad_hosts_toml_value_is_refused_before_any_connection(tmp_path):
    r = fab("-H", "far,other", "status", hosts_file=inventory(tmp_path, "parallel = 0"))
    assert r.returncode == 2, r.stderr
    assert "defaults.parallel" in r.stderr and "must be 1 or more hosts at once, got 0" in r.stderr
    assert "write parallel = 8" in r.stderr


def test_connections_open_as_many_at_once_as_the_setting(tmp_path, monkeypatch):
    cfg = load(inventory(tmp_path, "parallel = 3"))
    seen = {}

    def open_all(endpoints, *, dry_run=False, echo=None, max_parallel):
        seen["endpoints"], seen["max_parallel"] = len(endpoints), max_parallel
        raise Stop

    monkeypatch.setattr(release, "open_all", open_all)
    with pytest.raises(Stop):
        release._run(lambda ts: None, cfg, list(cfg.hosts.values()), cfg.projects["uavcrew"], False, "deploy")
    assert seen == {"endpoints": 2, "max_parallel": 3}


def test_operations_take_their_configs_setting(tmp_path):
    cfg = load(inventory(tmp_path, "parallel = 5"))
    proj = cfg.projects["uavcrew"]
    assert rollback.Rollback(cfg, proj, rollback.Options(), []).parallel == 5
    assert envpush.EnvPush(cfg, proj, lambda old: "", []).parallel == 5


def test_status_queries_as_many_hosts_at_once_as_the_setting(tmp_path, monkeypatch):
    cfg = load(inventory(tmp_path, "parallel = 1"))
    workers = []
    real = status.ThreadPoolExecutor

    def pool(max_workers):
        workers.append(max_workers)
        return real(max_workers=max_workers)

    monkeypatch.setattr(status, "ThreadPoolExecutor", pool)
    monkeypatch.setattr(status, "query", lambda config, host, projects: [])
    jobs = [(h, [cfg.projects["uavcrew"]]) for h in cfg.hosts.values()]
    assert status.collect(cfg, jobs) == []
    assert workers == [1]


@pytest.mark.parametrize("parallel", [1, 2, 5])
def test_open_all_opens_no_more_connections_at_once_than_asked(monkeypatch, parallel):
    import threading

    from ayna_fab.remote import ssh, transport

    cond = threading.Condition()
    counts = {"open": 0, "begun": 0, "peak": 0}

    def opened(ep, dry_run=False, echo=None):
        with cond:   # each opening waits until `parallel` are open together, or every one has begun
            counts["open"] += 1
            counts["begun"] += 1
            counts["peak"] = max(counts["peak"], counts["open"])
            cond.notify_all()
            cond.wait_for(lambda: counts["open"] >= parallel or counts["begun"] == 7, timeout=30)
            counts["open"] -= 1
        return transport.Remote(ep.name, None)

    monkeypatch.setattr(transport.Remote, "open", staticmethod(opened))
    endpoints = [ssh.Endpoint(name=f"h{i}", hostname="192.0.2.1") for i in range(7)]
    remotes = transport.open_all(endpoints, max_parallel=parallel)
    assert sorted(remotes) == [f"h{i}" for i in range(7)] and counts["peak"] == parallel
