"""`fab config`: the configuration as each host runs each project, its stage applied, secrets masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ayna_fab.config.model import load
from ayna_fab.ops import configview

ROOT = Path(__file__).resolve().parents[2]

HOSTS = """
[defaults]
keep_backups = 7

[projects.shop]
source = "."
port_base = 8150
env = "production"
env_file = "shop.env"
stages = { staging = ["stg"] }
env_files = { staging = "shop.staging.env" }

[hosts.stg]
hostname = "stg.example.org"
projects = ["shop"]

[hosts.prod]
hostname = "prod.example.org"
projects = ["shop"]
database = "own"
"""

SECRETS = ("s3cr3t-key-value", "hunter22", "tok-abcdef", "pw-in-query")


def inventory(tmp_path: Path) -> Path:
    (tmp_path / "hosts.toml").write_text(HOSTS)
    (tmp_path / "shop.staging.env").write_text(
        "SECRET_KEY=s3cr3t-key-value\nDATABASE_URL=postgresql://shop:hunter22@db.internal/shop\n"
        "API_TOKEN=tok-abcdef\nCACHE_URL=redis://cache/0?password=pw-in-query\nALLOWED_HOSTS=stg.example.org\n"
        "MAX_KEY_AGE=1\n")
    return tmp_path / "hosts.toml"


def test_a_hosts_view_has_its_stage_its_settings_and_its_env_with_secrets_masked(tmp_path):
    cfg = load(inventory(tmp_path))
    view = configview.resolved(cfg, cfg.hosts["stg"], cfg.projects["shop"])
    assert (view["stage"], view["settings"]["env"], view["database"]) == ("staging", "staging", "shared")
    assert view["on_host"]["env_file"] == "/opt/ayna/shop/shared/.env.staging"
    assert view["settings"]["keep_backups"] == 7          # from [defaults]
    assert view["ports"] == {"web": 8150, "api": 8151}
    env = view["env_file"]["values"]
    assert env["SECRET_KEY"] == env["API_TOKEN"] == env["MAX_KEY_AGE"] == "***"
    assert env["DATABASE_URL"] == "postgresql://shop:***@db.internal/shop"
    assert env["CACHE_URL"] == "redis://cache/0?password=***" and env["ALLOWED_HOSTS"] == "stg.example.org"
    text = json.dumps(view) + "\n".join(configview.lines(view))
    assert not any(secret in text for secret in SECRETS)


def test_a_host_in_no_stage_runs_env_and_a_missing_env_file_is_said(tmp_path):
    cfg = load(inventory(tmp_path))
    view = configview.resolved(cfg, cfg.hosts["prod"], cfg.projects["shop"])
    assert (view["stage"], view["database"]) == ("production", "own")
    assert view["env_file"]["values"] is None and view["env_file"]["problem"]
    assert "[prod: shop (production)]" in configview.lines(view)


def test_fab_config_prints_json_for_one_host_and_never_a_secret(tmp_path):
    env = {**os.environ, "AYNA_FAB_HOSTS": str(inventory(tmp_path))}
    fab = Path(sys.executable).parent / "fab"
    done = subprocess.run([str(fab), "config", "--host", "stg", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    views = json.loads(done.stdout)
    assert [(v["host"], v["stage"]) for v in views] == [("stg", "staging")]
    assert not any(secret in done.stdout + done.stderr for secret in SECRETS)
