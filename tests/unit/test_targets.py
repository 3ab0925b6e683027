"""TARGET resolution and project selection, all offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from ayna_fab.config.model import load
from ayna_fab.config.targets import known_targets, project_for, resolve, target_or_default
from ayna_fab.errors import ConfigError, UsageError

FLEET = """\
[projects.uavcrew]
source = "../uavcrew"
env = "production"

[projects.aynasite]
source = "../aynasite"
env = "production"

[hosts.web-1]
hostname = "web1.example.org"
projects = ["uavcrew"]

[hosts.web-2]
hostname = "web2.example.org"
projects = ["uavcrew", "aynasite"]

[hosts.stage]
hostname = "stage.example.org"
projects = ["aynasite"]

[groups]
web = ["web-1", "web-2"]
everything = ["stage", "web", "web-1"]
nested = ["everything", "web"]
"""


@pytest.fixture
def cfg(tmp_path: Path):
    path = tmp_path / "hosts.toml"
    path.write_text(FLEET)
    return load(path)


def names(hosts):
    return [h.name for h in hosts]


@pytest.mark.parametrize("target,expected", [
    ("web-1", ["web-1"]),
    ("web", ["web-1", "web-2"]),
    ("everything", ["stage", "web-1", "web-2"]),
    ("nested", ["stage", "web-1", "web-2"]),
    ("web-2,stage", ["web-2", "stage"]),
    (" stage , web ", ["stage", "web-1", "web-2"]),
    ("web-1,web,web-1", ["web-1", "web-2"]),
])
def test_resolve_keeps_order_and_drops_duplicates(cfg, target, expected):
    assert names(resolve(cfg, target)) == expected


def test_unknown_name_lists_hosts_and_groups(cfg):
    with pytest.raises(ConfigError) as err:
        resolve(cfg, "web-1,wbe")
    text = str(err.value)
    assert "unknown target 'wbe'" in text and "hosts.toml" in text
    assert "hosts: web-1, web-2, stage; groups: web, everything, nested" in text
    assert "did you mean 'web'?" in err.value.hint


@pytest.mark.parametrize("target", ["", ",", "web,", ",web", "web,,stage", " "])
def test_empty_names_are_errors(cfg, target):
    with pytest.raises(ConfigError, match="has an empty name"):
        resolve(cfg, target)


@pytest.mark.parametrize("target", ["$(rm -rf /)", "`id`", "web;reboot", "web\nstage",
                                    "../web", "WEB", "\u0445eb", "web1.example.org",
                                    "uavcrew"])
def test_hostile_or_non_target_names_are_unknown(cfg, target):
    with pytest.raises(ConfigError, match="unknown target"):
        resolve(cfg, target)


def test_hand_built_cycle_does_not_loop(cfg):
    from dataclasses import replace
    looped = replace(cfg, groups={"a": ("b",), "b": ("a",)})
    with pytest.raises(ConfigError, match="cycle: a -> b -> a"):
        resolve(looped, "a")


def test_target_or_default(cfg, tmp_path):
    assert target_or_default(cfg, "web") == "web"
    with pytest.raises(ConfigError) as err:
        target_or_default(cfg, None)
    assert "defaults.default_target is not set" in str(err.value)
    assert known_targets(cfg) in str(err.value) and "-H" in err.value.hint
    with pytest.raises(ConfigError):
        target_or_default(cfg, "  ")

    path = tmp_path / "with_default.toml"
    path.write_text('[defaults]\ndefault_target = "web"\n' + FLEET)
    with_default = load(path)
    assert target_or_default(with_default, None) == "web"
    assert target_or_default(with_default, "stage") == "stage"


def test_known_targets_without_groups(tmp_path):
    path = tmp_path / "hosts.toml"
    path.write_text(FLEET.split("[groups]")[0])
    assert known_targets(load(path)) == "hosts: web-1, web-2, stage"


def test_project_is_implied_by_a_single_project_host(cfg):
    assert project_for(cfg, cfg.hosts["web-1"], None).name == "uavcrew"
    assert project_for(cfg, cfg.hosts["web-1"], "uavcrew").name == "uavcrew"


def test_project_required_on_a_multi_project_host(cfg):
    with pytest.raises(UsageError) as err:
        project_for(cfg, cfg.hosts["web-2"], None)
    assert str(err.value).startswith("[web-2] ")
    assert "uavcrew, aynasite" in str(err.value) and "--project" in err.value.hint
    assert err.value.exit_code == 2
    assert project_for(cfg, cfg.hosts["web-2"], "aynasite").name == "aynasite"


@pytest.mark.parametrize("host,project", [("web-1", "aynasite"), ("stage", "uavcrew"),
                                          ("web-2", "nope")])
def test_project_not_carried_is_an_error(cfg, host, project):
    with pytest.raises(UsageError, match=f"does not carry project '{project}'"):
        project_for(cfg, cfg.hosts[host], project)
