"""The --json documents of `backup --list` and `init` (schemas in docs/cli.md): one document on
stdout that parses, on success and on failure; a failure keeps its exit code."""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from fabric import Connection
from invoke.exceptions import Exit

from ayna_fab.cli.tasks import daytwo, init
from ayna_fab.errors import OperationFailed

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "uavcrew"
BACKUP = {"name": "uavcrew-20260102T030405Z-v7.dump", "release": "v7", "taken_at": "2026-01-02T03:04:05Z",
          "bytes": 2048, "mode": "0600"}


def Conn():
    return Connection("box")   # -H box; never connects


@pytest.fixture
def inventory(tmp_path, monkeypatch):
    path = tmp_path / "hosts.toml"
    path.write_text(f'[projects.uavcrew]\nsource = "{DEMO}"\nenv = "production"\n\n'
                    '[hosts.box]\nhostname = "192.0.2.1"\nprojects = ["uavcrew"]\n')   # TEST-NET-1: never reached
    monkeypatch.setenv("AYNA_FAB_HOSTS", str(path))
    return path


def host_answers(monkeypatch, answer):
    @contextmanager
    def opened(cfg, host):
        class Remote:
            def run(self, command, check=False):
                return None
        yield Remote()

    def read(host, res, step):
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(daytwo, "_open", opened)
    monkeypatch.setattr(daytwo.answers, "read", read)


def test_backup_list_json_parses_with_every_field(inventory, monkeypatch, capsys):
    host_answers(monkeypatch, {"backups": [BACKUP]})
    daytwo.backup.body(Conn(), list=True, json=True)
    doc = json.loads(capsys.readouterr().out)
    assert doc == {"ok": True, "exit_code": 0, "backups": [
        {"host": "box", "project": "uavcrew", "backup": BACKUP["name"], "release": "v7",
         "taken_at": "2026-01-02T03:04:05Z", "bytes": 2048, "mode": "0600"}]}


def test_backup_list_json_is_a_document_on_failure_too(inventory, monkeypatch, capsys):
    host_answers(monkeypatch, OperationFailed("no answer", host="box", step="backups"))
    with pytest.raises(Exit) as done:
        daytwo.backup.body(Conn(), list=True, json=True)
    doc = json.loads(capsys.readouterr().out)
    assert done.value.code == 1 and doc["ok"] is False and doc["exit_code"] == 1
    assert doc["host"] == "box" and doc["step"] == "backups" and doc["error"] == "no answer"


def test_backup_json_without_list_is_a_usage_error(inventory, capsys):
    with pytest.raises(Exit) as done:
        daytwo.backup.body(Conn(), json=True)
    assert done.value.code == 2 and "--json goes with --list" in capsys.readouterr().err


def test_init_json_parses_and_says_what_it_found(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AYNA_FAB_HOSTS", str(tmp_path / "hosts.toml"))
    project = tmp_path / "app"
    shutil.copytree(DEMO, project, ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    init.init.body(None, str(project), json=True)
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["exit_code"] == 0 and doc["project"] == "uavcrew" and doc["written"] is False
    assert doc["found"]["services"] == ["web", "api", "celery", "beat"] and doc["found"]["database"] == "postgresql"
    assert "[projects.uavcrew]" in doc["entry"] and "SECRET_KEY=" in doc["env"]
    assert all(set(g) == {"what", "fix", "blocking"} for g in doc["before_first_deploy"])
    assert doc["ready"] is not any(g["blocking"] for g in doc["before_first_deploy"])
    assert not (tmp_path / "hosts.toml").exists()


def test_init_json_writes_and_never_shows_the_secrets(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AYNA_FAB_HOSTS", str(tmp_path / "hosts.toml"))
    init.init.body(None, str(DEMO), write=True, host="box", hostname="192.0.2.1", json=True)
    out = capsys.readouterr().out
    doc = json.loads(out)
    secret = next(line for line in (tmp_path / "uavcrew.env").read_text().splitlines()
                  if line.startswith("SECRET_KEY="))
    assert doc["written"] is True and doc["host"] == "box" and doc["env"] is None and secret not in out


def test_init_json_is_a_document_on_failure_too(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AYNA_FAB_HOSTS", str(tmp_path / "hosts.toml"))
    with pytest.raises(Exit) as done:
        init.init.body(None, str(tmp_path / "missing"), json=True)
    doc = json.loads(capsys.readouterr().out)
    assert done.value.code == 2 and doc["ok"] is False and doc["exit_code"] == 2 and "not a directory" in doc["error"]
