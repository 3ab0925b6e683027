"""`deploy --json` and `rollback --json`: one JSON document on stdout when the operation ends, on
success and on failure, lines for people on stderr (docs/json-output.md). The tasks run for real
against the runner's fake hosts (tests/fakehost.py), with only the SSH connection replaced."""

from __future__ import annotations

import json

import pytest
from invoke import Context
from invoke.exceptions import Exit

from ayna_fab.cli.tasks import common, release
from ayna_fab.errors import ConfigError, NeedsAttention
from ayna_fab.ops import report
from ayna_fab.ops.runner import RunState
from tests.fakehost import FakeRemote
from tests.unit.test_recovery import World

KEYS = {"schema", "operation", "project", "dry_run", "release", "revision", "ok", "exit_code", "failed_step",
        "failed_host", "error", "hook_problems", "seconds", "hosts"}
HOST_KEYS = {"outcome", "state", "release", "serving", "previous", "steps", "failed_step"}


@pytest.fixture
def world(tmp_path, monkeypatch):
    """One fake host, h1, reached by the real tasks: hosts.toml and SSH are the only stand-ins."""
    w = World(tmp_path, hosts=("h1",))
    monkeypatch.setattr(common, "load", lambda: w.config_of("h1"))
    monkeypatch.setattr(common, "given_target", lambda c: "h1")     # -H h1
    monkeypatch.setattr(release.targets, "endpoint", lambda cfg, host: host.name)

    def open_all(endpoints, *, dry_run=False, echo=None, max_parallel):
        FakeRemote.laptop_dead = False
        return {h: FakeRemote(h, w.layout(h).root, w.states[h], dry_run=dry_run, echo=echo) for h in endpoints}

    monkeypatch.setattr(release, "open_all", open_all)
    return w


def run(capsys, task, **kw) -> tuple[dict, str, int]:
    """The task with --json: (its document, what it said on stderr, its exit code)."""
    code = 0
    try:
        task(Context(), json=True, **kw)
    except Exit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return json.loads(out), err, code


def test_deploy_json_on_success(world, capsys):
    doc, err, code = run(capsys, release.deploy)
    assert code == 0, doc["error"]
    assert set(doc) == KEYS and set(doc["hosts"]["h1"]) == HOST_KEYS
    assert (doc["operation"], doc["project"], doc["ok"], doc["exit_code"]) == ("deploy", "demo", True, 0)
    assert doc["release"] == "v1" and len(doc["revision"]) == 40 and doc["failed_step"] is None
    h1 = doc["hosts"]["h1"]
    assert (h1["outcome"], h1["release"], h1["serving"], h1["state"]) == ("live", "v1", "v1", "recorded live")
    names = [s["name"] for s in h1["steps"]]
    assert names[:3] == ["lock + plan", "upload", "install"] and "migrate" in names
    assert all(s["ok"] and s["seconds"] >= 0 for s in h1["steps"])
    assert "is live and healthy" in err and "[h1] install" in err   # people's lines, on stderr only


def test_deploy_json_on_failure(world, capsys):
    run(capsys, release.deploy)
    world.commit("v = 2\n")
    world.states["h1"].fail_steps.add("migrate")
    doc, err, code = run(capsys, release.deploy)
    assert code == 1 and doc["exit_code"] == 1 and doc["ok"] is False
    assert (doc["failed_step"], doc["failed_host"], doc["release"]) == ("migrate", "h1", "v2")
    assert "migrate" in doc["error"]["message"] or doc["error"]["message"]
    h1 = doc["hosts"]["h1"]
    assert (h1["outcome"], h1["failed_step"], h1["serving"], h1["previous"]) == ("failed", "migrate", "v1", "v1")
    assert {"name": "migrate", "seconds": h1["steps"][-1]["seconds"], "ok": False} in h1["steps"]
    assert "error:" in err and world.current() == 1


def test_rollback_json_on_success(world, capsys):
    run(capsys, release.deploy)
    world.commit("v = 2\n")
    run(capsys, release.deploy)
    doc, err, code = run(capsys, release.rollback)
    assert code == 0 and set(doc) == KEYS and doc["operation"] == "rollback" and doc["ok"]
    assert doc["release"] == "v1" and doc["hosts"]["h1"]["outcome"] == "live"
    assert doc["hosts"]["h1"]["previous"] == "v2" and len(doc["revision"]) == 40
    assert world.current() == 1


def test_rollback_json_on_failure(world, capsys):
    run(capsys, release.deploy)
    doc, err, code = run(capsys, release.rollback)    # nothing to go back to
    assert code == 2 and doc["exit_code"] == 2 and not doc["ok"] and doc["error"]["message"]
    assert doc["hosts"]["h1"]["outcome"] == "untouched" and world.current() == 1


def test_a_refusal_before_any_project_is_a_document_too(world, capsys, monkeypatch):
    def broken():
        raise ConfigError("hosts.toml: unknown key 'hots'", hint="did you mean 'hosts'?")

    monkeypatch.setattr(common, "load", broken)
    doc, err, code = run(capsys, release.deploy)
    assert code == 2 and doc["exit_code"] == 2 and doc["project"] is None and doc["hosts"] == {}
    assert doc["error"] == {"message": "hosts.toml: unknown key 'hots'", "hint": "did you mean 'hosts'?"}


def test_a_dry_run_document_says_so(world, capsys):
    doc, err, code = run(capsys, release.deploy, dry_run=True)
    assert code == 0 and doc["dry_run"] and doc["hosts"]["h1"]["outcome"] == "dry-run"


def test_without_json_stdout_has_the_lines_for_people(world, capsys):
    release.deploy(Context())
    out, err = capsys.readouterr()
    assert "is live and healthy" in out and not out.lstrip().startswith("{")


# --- the outcome of a host, from its run --------------------------------------------------------

class _Run:
    def __init__(self, state, number=2, dry_run=False):
        self.state, self.number, self.dry_run, self.name = state, number, dry_run, "h1"


@pytest.mark.parametrize("state, error, outcome", [
    (RunState.RECORDED_LIVE, None, "live"),
    (RunState.RECORDED_FAILED, None, "failed"),
    (RunState.PUT_BACK, None, "failed"),
    (RunState.NEW, None, "untouched"),
    (RunState.RELEASED, None, "untouched"),
    (RunState.LOCK_LOST, None, "needs-attention"),
    (RunState.PUT_BACK, NeedsAttention("restart failed", host="h1"), "needs-attention"),
    (RunState.RECORDED_FAILED, NeedsAttention("another host", host="h2"), "failed"),
])
def test_each_run_state_is_one_outcome(state, error, outcome):
    assert report.host_outcome(_Run(state), error) == outcome


def test_exit_codes_follow_the_errors():
    assert report.exit_code(None) == 0 and report.exit_code(NeedsAttention("x")) == 3
    assert report.exit_code(ConfigError("x")) == 2 and report.exit_code(KeyboardInterrupt()) == 130
