"""Stages: one project run with another env (and env file) on some hosts or groups, from one hosts.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from ayna_fab.config.layout import Layout
from ayna_fab.config.model import load
from ayna_fab.config.targets import project_for, stage, staged
from ayna_fab.errors import ConfigError
from ayna_fab.ops import status

BASE = """
[projects.shop]
source = "."
port_base = 8150
env = "production"
env_file = "shop.env"
{project}

[hosts.stg]
hostname = "stg.example.org"
projects = ["shop"]

[hosts.prod1]
hostname = "prod1.example.org"
projects = ["shop"]

[hosts.prod2]
hostname = "prod2.example.org"
projects = ["shop"]

[groups]
staging = ["stg"]
production = ["prod1", "prod2"]
{tail}
"""


def write(tmp_path: Path, project: str = "", tail: str = "") -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(BASE.format(project=project, tail=tail))
    return path


def test_a_stage_names_a_group_and_changes_env_and_env_file_only(tmp_path):
    cfg = load(write(tmp_path, 'stages = { staging = ["staging"] }\nenv_files = { staging = "shop.staging.env" }'))
    stg, prod = project_for(cfg, cfg.hosts["stg"], None), project_for(cfg, cfg.hosts["prod1"], "shop")
    assert (stg.env, stg.env_file) == ("staging", tmp_path / "shop.staging.env")
    assert (prod.env, prod.env_file) == ("production", tmp_path / "shop.env")
    assert (stg.name, stg.port_base, stg.services) == (prod.name, prod.port_base, prod.services)
    assert Layout.of(cfg, stg).env_file.endswith("/shop/shared/.env.staging")
    assert Layout.of(cfg, prod).env_file.endswith("/shop/shared/.env.production")
    assert Layout.of(cfg, stg).root == Layout.of(cfg, prod).root


def test_a_stage_with_no_env_file_of_its_own_uploads_none(tmp_path):
    """The production .env must never be uploaded to a staging host because staging named no file."""
    cfg = load(write(tmp_path, 'stages = { staging = ["stg"] }'))
    assert staged(cfg, cfg.hosts["stg"], cfg.projects["shop"]).env_file is None
    assert staged(cfg, cfg.hosts["prod2"], cfg.projects["shop"]).env_file == tmp_path / "shop.env"


def test_env_command_gives_the_projects_own_env_only(tmp_path):
    """Its output is production's secrets: a staging host gets its own env_files entry, or nothing."""
    cfg = load(write(tmp_path, 'stages = { staging = ["stg"] }\nenv_command = ["pass", "show", "shop/env"]'))
    assert staged(cfg, cfg.hosts["stg"], cfg.projects["shop"]).env_command is None
    assert staged(cfg, cfg.hosts["prod2"], cfg.projects["shop"]).env_command == ("pass", "show", "shop/env")


def test_without_stages_every_host_runs_env(tmp_path):
    cfg = load(write(tmp_path))
    assert {stage(cfg, h, cfg.projects["shop"]) for h in cfg.hosts.values()} == {"production"}
    assert staged(cfg, cfg.hosts["stg"], cfg.projects["shop"]) is cfg.projects["shop"]


def test_a_host_in_two_stages_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="host 'stg' is in two stages of shop: staging and dev"):
        load(write(tmp_path, 'stages = { staging = ["staging"], dev = ["stg"] }'))


def test_one_machine_as_two_host_entries_in_two_stages_is_refused(tmp_path):
    twin = '\n[hosts.stg-twin]\nhostname = "prod1.example.org"\nprojects = ["shop"]\n'
    with pytest.raises(ConfigError, match=r"hosts 'prod1' and 'stg-twin' are one machine \(prod1.example.org\) "
                                          "running shop as production and as staging"):
        load(write(tmp_path, 'stages = { staging = ["stg-twin"] }', twin))
    load(write(tmp_path, '', twin))   # the same machine twice in one stage is no collision


@pytest.mark.parametrize("stages, problem", [
    ('{ stageing = ["stg"] }', "unknown env 'stageing'"),
    ('{ staging = ["nope"] }', "unknown host or group 'nope'"),
    ('{ staging = [] }', "must be a non-empty array"),
    ('{ staging = "stg" }', "must be a non-empty array"),
    ('["stg"]', "must be a table"),
])
def test_bad_stages_are_reported(tmp_path, stages, problem):
    with pytest.raises(ConfigError, match=problem):
        load(write(tmp_path, f"stages = {stages}"))


def test_a_stage_host_must_carry_the_project(tmp_path):
    other = '\n[hosts.other]\nhostname = "o.example.org"\nprojects = []\n'
    with pytest.raises(ConfigError, match="host 'other' does not carry shop"):
        load(write(tmp_path, 'stages = { staging = ["other"] }', other))


def test_status_shows_each_hosts_stage_and_drift_only_within_a_stage(tmp_path):
    cfg = load(write(tmp_path, 'stages = { staging = ["staging"] }'))
    res = {"meta": {"revision": "a"}, "releases": [], "current": 3, "units": {}, "health": {}, "lock": None,
           "disk_free": None}
    rows = []
    for name, current in (("stg", 4), ("prod1", 3), ("prod2", 3)):
        host = cfg.hosts[name]
        rows.append(status.row(cfg, host, staged(cfg, host, cfg.projects["shop"]), {**res, "current": current}, None))
    status.flag_drift(rows)
    assert [(r["host"], r["stage"], r["drift"]) for r in rows] == [
        ("stg", "staging", False), ("prod1", "production", False), ("prod2", "production", False)]
    rows[2]["release"] = "v2"
    status.flag_drift(rows)
    assert [r["drift"] for r in rows] == [False, True, True]
    assert status.cells(rows[0])[:4] == ["stg", "shop", "staging", "v4"]


def test_a_deploy_that_moves_a_host_to_another_stage_says_so(tmp_path):
    import dataclasses

    from tests.unit.test_recovery import World
    w = World(tmp_path, hosts=("h1",))
    w.deploy()
    assert not any("this deploy makes it" in line for line in w.said)
    w.project = dataclasses.replace(w.project, env="staging")
    Path(w.layout("h1").env_file).write_text("SECRET_KEY=x\nDATABASE_URL=postgresql://demo@localhost/demo\n")
    w.commit("v = 2\n")
    w.deploy()
    assert w.current() == 2
    assert "warning: [h1] v1 runs demo as production; this deploy makes it staging (shared/.env.staging)" in w.said
    w.commit("v = 3\n")
    w.said.clear()
    w.deploy()
    assert not any("this deploy makes it" in line for line in w.said)
