"""fab remove's commands (commands/teardown.py), run by a local shell on a temporary project tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ayna_fab.commands import teardown
from ayna_fab.provision import database


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
