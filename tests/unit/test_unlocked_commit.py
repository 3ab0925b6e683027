"""A commit with no uv.lock is refused before any connection: deploys install exactly what it pins."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ayna_fab.config import model as config
from ayna_fab.errors import UsageError
from ayna_fab.ops import deploy


def project(tmp_path: Path, files: dict[str, str]):
    src = tmp_path / "shop"
    src.mkdir()
    for name, text in files.items():
        (src / name).write_text(text)
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "shop"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    (tmp_path / "hosts.toml").write_text(
        f'[projects.shop]\nsource = "{src}"\nservices = ["web"]\nenv = "production"\nport_base = 8150\n\n'
        '[hosts.h1]\nhostname = "127.0.0.2"\nprojects = ["shop"]\n')
    return config.load(tmp_path / "hosts.toml").projects["shop"]


def test_a_commit_without_uv_lock_is_refused_at_plan_naming_the_way_to_one(tmp_path):
    shop = project(tmp_path, {"pyproject.toml": '[project]\nname = "shop"\n', "manage.py": ""})
    with pytest.raises(UsageError) as exc:
        deploy.resolve(shop, "HEAD")
    assert exc.value.step == "plan" and "has no uv.lock" in exc.value.message
    assert exc.value.hint.startswith(f"fab init {shop.source} prints the commands")


def test_a_commit_with_uv_lock_resolves(tmp_path):
    shop = project(tmp_path, {"pyproject.toml": '[project]\nname = "shop"\n', "uv.lock": "version = 1\n"})
    source, revision = deploy.resolve(shop, "HEAD")
    assert len(revision) == 40
