"""Pure parts of deploys: refs, unit actions, health URLs, lock staleness, git sources."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ayna_fab.commands.hostcalls import activate, health_checks
from ayna_fab.config import model as config
from ayna_fab.config.layout import Layout
from ayna_fab.errors import UsageError
from ayna_fab.ops.activation import unit_actions
from ayna_fab.ops.gitsource import Source, check_ref
from ayna_fab.ops.lockrecord import is_stale as lock_is_stale

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project():
    return config.load(REPO / "hosts.toml").projects["uavcrew"]


def activate_command(project):
    cfg = config.load(REPO / "hosts.toml")
    return activate(Layout.of(cfg, project), project, "t", 2, unit_actions(project), 60, 60).call


@pytest.mark.parametrize("ref", ["main", "v1.2.3", "feature/x-y", "a1b2c3d", "HEAD", "release@2026"])
def test_ordinary_refs_pass(ref):
    assert check_ref(ref) == ref


@pytest.mark.parametrize("ref", ["", "-x", "--upload-pack=touch /tmp/x", "$(id)", "a;b", "a b", "a..b",
                                 "x.lock", "a@{1}", "`id`", "a\nb", "ü", "x" * 201])
def test_hostile_refs_are_refused(ref):
    with pytest.raises(UsageError, match="is not a ref"):
        check_ref(ref)


def test_every_unit_is_restarted_so_no_process_keeps_an_old_releases_venv(project):
    # A HUP kept gunicorn's master on the venv of the release it started from (routine deploys
    # broke the site once cleanup deleted that release). Beat is restarted (never two at once);
    # web, api and the worker get fresh processes in the idle slot, and the live slot is stopped.
    assert unit_actions(project) == [("uavcrew-beat.service", "restart")]
    call = activate_command(project)
    assert call.slots == {"blue": ["uavcrew-web-blue.service", "uavcrew-api-blue.service", "uavcrew-celery-blue.service"],
                          "green": ["uavcrew-web-green.service", "uavcrew-api-green.service",
                                    "uavcrew-celery-green.service"]}
    assert call.http_units == ["uavcrew-web-blue.service", "uavcrew-web-green.service",
                               "uavcrew-api-blue.service", "uavcrew-api-green.service"]


def test_health_is_polled_on_the_registry_ports_from_the_host(project):
    probes = {s: {slot: f"/run/ayna-fab-probe/uavcrew-{s}-{slot}.sock" for slot in ("blue", "green")}
              for s in ("web", "api")}
    assert health_checks(project) == [
        {"name": "web", "url": "http://127.0.0.1:8130/health/", "probes": probes["web"]},
        {"name": "api", "url": "http://127.0.0.1:8131/health", "probes": probes["api"]}]


def test_lock_staleness_is_judged_from_what_the_host_says():
    busy = {"from": "laptop", "pid": 42, "idle_seconds": 3600,
            "workers": [{"pid": 981, "what": "prepare", "seconds": 1900}]}
    stale, why = lock_is_stale(busy, "laptop", pid_alive=lambda p: False)
    assert not stale and "pid 981 is still running prepare on the host" in why   # the work ends first
    mine = {"from": "laptop", "pid": 42, "idle_seconds": 30, "workers": []}
    assert lock_is_stale(mine, "laptop", pid_alive=lambda p: False)[0] is True
    assert lock_is_stale(mine, "laptop", pid_alive=lambda p: True)[0] is False
    other = {"from": "elsewhere", "pid": 42, "idle_seconds": 300, "workers": []}
    assert lock_is_stale(other, "laptop")[0] is False
    idle = {**other, "idle_seconds": 20 * 60}
    assert lock_is_stale(idle, "laptop") == (
        True, "nothing has run under it for 20 minutes and no step of it runs on the host")
    assert lock_is_stale({"from": "x"}, "laptop")[0] is True
    # the host's holder says whether the laptop's connection lives: it outweighs pid and idle time
    gone = {"from": "elsewhere", "pid": 42, "idle_seconds": 5, "workers": [], "orphaned": True}
    assert lock_is_stale(gone, "laptop") == (True, "its laptop's connection is gone and no step of it runs "
                                                   "on the host")
    connected = {**idle, "connected": True}
    assert lock_is_stale(connected, "laptop", pid_alive=lambda p: False)[0] is False


def _git(path, *args):
    subprocess.run(["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


def test_a_project_in_a_subdirectory_archives_and_diffs_relative_to_itself(tmp_path):
    top = tmp_path / "repo"
    (top / "apps" / "p" / "pkg").mkdir(parents=True)
    (top / "apps" / "p" / "a.txt").write_text("one")
    (top / "apps" / "p" / "pkg" / "b.txt").write_text("two")
    (top / "other.txt").write_text("not ours")
    _git(top, "init", "-q")
    _git(top, "add", "-A")
    _git(top, "commit", "-qm", "1")
    src = Source.open(top / "apps" / "p")
    first = src.resolve("HEAD")
    assert src.prefix == "apps/p" and sorted(src.files(first)) == ["a.txt", "pkg/b.txt"]
    (top / "apps" / "p" / "a.txt").write_text("changed")
    (top / "apps" / "p" / "pkg" / "b.txt").unlink()
    (top / "other.txt").write_text("also changed")
    _git(top, "add", "-A")
    _git(top, "commit", "-qm", "2")
    second = src.resolve("HEAD")
    assert src.changes(first, second) == (["a.txt"], ["pkg/b.txt"])
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(src.archive(second, ["a.txt"])), mode="r:gz") as tar:
        assert [m.name for m in tar.getmembers()] == ["a.txt"]
    assert src.blob(second, "a.txt") and src.blob(second, "missing") is None
    with pytest.raises(UsageError, match="does not resolve to a commit"):
        src.resolve("nope")


def test_uncommitted_changes_are_noticed(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("x")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "1")
    src = Source.open(tmp_path)
    assert not src.dirty()
    (tmp_path / "f").write_text("y")
    assert src.dirty()


def test_a_fleets_live_table_shows_each_hosts_last_step():
    import io

    from rich.console import Console

    from ayna_fab.cli.output import LiveHosts
    buf = io.StringIO()
    table = LiveHosts(["web1", "web2"], Console(file=buf, force_terminal=True, width=100))
    table.step("web1", "install", 1.25, True)
    table.step("web1", "check", 0.5, True)
    table.step("web2", "health", 60.0, False, "status 500")
    table.console.print(table.render())
    text = buf.getvalue()
    assert "web1" in text and "check" in text and "1.8s" in text  # total of its steps
    assert "health FAILED" in text and "status 500" in text
