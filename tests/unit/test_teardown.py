"""fab remove: its commands (commands/teardown.py) run by a local shell on a temporary project tree, and
its order (ops/teardown.py): nothing changes before its checks and its last backup."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ayna_fab.commands import caddy as caddycmd, teardown
from ayna_fab.config import model as config
from ayna_fab.errors import OperationFailed, UsageError
from ayna_fab.ops import teardown as ops_teardown
from ayna_fab.provision import caddyfile, database
from ayna_fab.remote.transport import Result


def sh(command):
    return subprocess.run(["bash", "-c", command.script], capture_output=True, text=True, timeout=60)


def test_purge_keeps_the_backups_alone_and_follows_no_link(tmp_path):
    root = tmp_path / "shop"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    for d in ("releases/v1", "shared/media", "shared/backups", "logs"):
        (root / d).mkdir(parents=True)
    (root / "shared" / "backups" / "shop-20260101-000000-v1.dump").write_text("dump")
    (root / "shared" / ".env.production").write_text("SECRET_KEY=x\n")
    (root / ".deploy-lock").mkdir()
    (root / "venv").symlink_to(outside)
    (root / "shared" / "media" / "link").symlink_to(outside)
    res = sh(teardown.purge_tree(str(root), str(root / "shared"), str(root / "shared" / "backups")))
    assert res.returncode == 0, res.stderr
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert left == ["shared", "shared/backups", "shared/backups/shop-20260101-000000-v1.dump"]
    assert (outside / "precious").read_text() == "x"
    assert "changed: removed" in res.stdout
    again = sh(teardown.purge_tree(str(root), str(root / "shared"), str(root / "shared" / "backups")))
    assert again.returncode == 0 and "changed:" not in again.stdout


def test_removing_files_says_what_it_removed_once(tmp_path):
    f = tmp_path / "ayna-shop"
    f.write_text("rule")
    first = sh(teardown.remove_files([str(f), str(tmp_path / "missing")], "sudoers"))
    assert first.returncode == 0 and first.stdout.strip() == f"changed: removed {f}" and not f.exists()
    assert sh(teardown.remove_files([str(f)], "sudoers")).stdout == ""


def test_the_drop_names_only_the_database_and_role_setup_made():
    sql = database.drop_sql(database.from_url("postgresql://shop:pw@localhost/shopdb"))
    assert 'DROP DATABASE "shopdb" WITH (FORCE);' in sql and 'DROP ROLE "shop";' in sql and "pw" not in sql


# --- the order of fab remove: nothing changes before its checks and its last backup -----------------


class Scripted:
    """A connection that answers host calls from a table and records every command."""

    def __init__(self, ran, answers, admin):
        self.ran, self.answers, self.admin = ran, answers, admin

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def run(self, command, *, check=True, timeout=600, stdin=None):
        name = type(command.call).__name__.lower() if command.call is not None else command.step
        self.ran.append(("admin" if self.admin else "deploy", name))
        answer = self.answers.get(name, {})
        return Result(3 if answer.get("error") else 0, "@@result " + json.dumps(answer) + "\n", "")

    def read_text(self, path, *, step):
        return "DATABASE_URL=postgresql://shop:pw@localhost/shop\n"


@pytest.fixture
def removal(tmp_path, monkeypatch):
    (tmp_path / "hosts.toml").write_text('[projects.shop]\nsource = "."\nenv = "production"\nport_base = 8150\n'
                                         'create_database = true\n\n[hosts.prod]\nhostname = "192.0.2.1"\n'
                                         'projects = ["shop"]\n')
    cfg = config.load(tmp_path / "hosts.toml")
    ran: list[tuple[str, str]] = []

    def go(answers, purge=True):
        monkeypatch.setattr(ops_teardown.Remote, "open",
                            staticmethod(lambda ep: Scripted(ran, answers, ep.user == "root")))
        return ops_teardown.run(cfg, cfg.hosts["prod"], cfg.projects["shop"], purge, lambda line: None)
    return go, ran


LIVE = {"status": {"lock": None}, "backup": {"backup": "shop-20260101T000000Z-v3.dump", "bytes": 10}}


def test_a_purge_backs_up_first_then_removes_drops_and_deletes(removal):
    go, ran = removal
    r = go(LIVE)
    assert ran == [("deploy", "status"), ("deploy", "backup"), ("admin", "caddy"), ("admin", "units"),
                   ("admin", "sudoers"), ("admin", "database"), ("admin", "files")]
    assert r.backup["backup"] == "shop-20260101T000000Z-v3.dump" and r.database.name == "shop"


def test_a_purge_whose_backup_fails_changes_nothing(removal):
    go, ran = removal
    with pytest.raises(UsageError, match="pg_dump"):
        go({**LIVE, "backup": {"error": "pg_dump", "detail": "pg_dump exited 1"}})
    assert [who for who, _ in ran] == ["deploy", "deploy"]


def test_remove_is_refused_while_an_operation_holds_the_lock(removal):
    go, ran = removal
    with pytest.raises(OperationFailed, match="holds the lock"):
        go({"status": {"lock": {"by": "ana", "from": "x", "operation": "deploy", "token": "t"}}}, purge=False)
    assert ran == [("deploy", "status")]


def test_without_purge_the_data_stays(removal):
    go, ran = removal
    go(LIVE, purge=False)
    assert ran == [("deploy", "status"), ("admin", "caddy"), ("admin", "units"), ("admin", "sudoers")]


def test_the_units_removed_include_the_media_server(removal, monkeypatch):
    go, ran = removal
    removed, real = [], teardown.remove_units
    monkeypatch.setattr(ops_teardown.cmd, "remove_units", lambda names: removed.extend(names) or real(names))
    go(LIVE, purge=False)
    assert "shop-media.service" in removed and "shop-web-blue.service" in removed and "shop-web-green.service" in removed


def test_the_proxy_site_goes_first_and_caddy_reloads_gracefully(tmp_path, monkeypatch):
    """The site file is removed and a running Caddy reloaded (never restarted), once; other sites stay."""
    monkeypatch.setattr(caddyfile, "DIR", str(tmp_path / "ayna"))
    (tmp_path / "ayna").mkdir()
    (tmp_path / "ayna" / "shop.caddy").write_text("shop.test {\n}\n")
    (tmp_path / "ayna" / "blog.caddy").write_text("blog.test {\n}\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/systemctl.log\n')
    (bin_dir / "systemctl").chmod(0o755)
    env_path = f"{bin_dir}:/usr/bin:/bin"
    run = lambda: subprocess.run(["bash", "-c", f"PATH={env_path}\n" + caddycmd.remove_site("shop").script],
                                 capture_output=True, text=True, timeout=60)
    first = run()
    assert first.returncode == 0, first.stderr
    assert not (tmp_path / "ayna" / "shop.caddy").exists() and (tmp_path / "ayna" / "blog.caddy").exists()
    assert "changed: reloaded caddy (graceful)" in first.stdout
    assert (tmp_path / "systemctl.log").read_text().splitlines() == ["is-active --quiet caddy", "reload caddy"]
    again = run()
    assert again.returncode == 0 and again.stdout == ""
    assert len((tmp_path / "systemctl.log").read_text().splitlines()) == 2
