"""The table of hosts.toml keys: the loader, the models, the reference page and fab init agree
with it, and a file's mistakes are all reported in one run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ayna_fab.config import model as config, rules as configrules, schema as configschema
from ayna_fab.config.schema import INTEGER, KEYS, Key
from ayna_fab.errors import ConfigError

PAGE = Path(__file__).resolve().parents[2] / "docs" / "hosts-toml.md"


def load_text(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    return config.load(path)


def problems(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_text(tmp_path, text)
    return err.value


# --- one table, and what comes from it --------------------------------------------

def test_the_committed_page_is_the_tables():
    assert PAGE.read_text() == configschema.markdown(), (
        "docs/hosts-toml.md is generated: python -m ayna_fab.config.schema --markdown > docs/hosts-toml.md")


def test_the_pages_example_sets_every_key_and_loads(tmp_path):
    text = configschema.example()
    for section in ("defaults", "project", "build", "hook", "host"):
        for name in configschema.allowed(section):
            assert f"\n{name} = " in text or f"\n[[projects.uavcrew.{name}]]\n" in text, (
                f"the example leaves out {section}'s {name}")
    cfg = load_text(tmp_path, text)
    assert cfg.projects["uavcrew"].hooks[0].name == "notify" and cfg.hosts["prod"].gateway == "bastion"


@pytest.mark.parametrize("model,section,own", [
    (config.Defaults, "defaults", []), (config.Project, "project", ["name"]), (config.Host, "host", ["name"]),
    (config.BuildStep, "build", []), (config.Hook, "hook", [])])
def test_each_model_has_a_field_for_each_key_of_its_section(model, section, own):
    assert {f.name for f in dataclasses.fields(model)} == {*own, *configschema.allowed(section)}


def test_a_default_is_written_once_in_the_table():
    assert config.Defaults().user == "adonis" and config.Defaults().keep_releases == 5
    assert config.Hook(name="n", phase="after-success", command=("true",)).timeout == 300
    assert config.BuildStep(name="n", command=("true",), outputs=("dist",)).timeout == 600
    assert dict(config.DEFAULT_HEALTH) == {"web": "/health/", "api": "/health"}
    # a key a project shares with a wider section is None there: the wider value applies where it is used
    project = config.Project(name="p", source=None, port_base=8150, env="dev")
    assert project.keep_backups is None and project.index_url is None
    assert project.services == configrules.SERVICES and project.django is True


def test_a_new_key_is_one_row():
    """A row added to the table is an allowed key, a field with its default, a line of the page
    and something fab init can write, with nothing else to edit."""
    row = Key("keep_logs", ("defaults", "project"), INTEGER, 30, "days of deploy log lines kept", "30",
              configrules.between(1, 3650))
    keys = (*KEYS, row)
    assert "keep_logs" in configschema.allowed("project", keys) and "keep_logs" not in configschema.allowed("project")

    @configschema.model("defaults", keys)
    class Defaults:
        pass

    @configschema.model("project", keys)
    class Project:
        name: str

    assert Defaults().keep_logs == 30
    assert Project(name="p", source=None, port_base=8150, env="dev").keep_logs is None   # [defaults]' applies
    assert "| `keep_logs` | integer | `30` | 1-3650 | days of deploy log lines kept |" in configschema.markdown(keys)
    assert "keep_logs = 30" in configschema.example(keys)
    assert configschema.entry("[projects.p]", "project", {"keep_logs": 7, "env": "dev"}, keys=keys) == (
        '[projects.p]\nenv = "dev"\nkeep_logs = 7\n')
    with pytest.raises(configrules.Invalid, match="must be 1-3650, got 0"):
        row.read(0, row.at("defaults.keep_logs"), row.example)


def test_an_entry_refuses_a_key_its_section_does_not_have():
    with pytest.raises(ValueError, match="hostname"):
        configschema.entry("[projects.p]", "project", {"hostname": "x"})


# --- every mistake of a file, in one run ------------------------------------------

SEVERAL = """\
[defaults]
user = "root"
keep_releases = 1
conect_timeout = 5

[projects.uavcrew]
source = "../uavcrew"
env = "prodution"
services = ["web", "celery"]
checks = "strictt"

[[projects.uavcrew.hooks]]
name = "chat"
phase = "before-flip"
on = "laptop"
command = ["notify"]

[hosts.prod]
hostname = "prod example.org"
projects = ["uavcrew"]
gateway = "bastoin"

[hosts.stage]
hostname = "stage.example.org"
projects = ["uavcrew"]

[groups]
production = ["prod", "prd"]
"""


def test_every_mistake_of_a_file_is_reported_in_one_run(tmp_path):
    err = problems(tmp_path, SEVERAL)
    text = str(err)
    assert isinstance(err, ConfigError) and err.exit_code == 2
    expected = [
        ("defaults.conect_timeout", "unknown key 'conect_timeout'", "did you mean 'connect_timeout'?"),
        ("defaults.keep_releases", "must be at least 2, got 1", "write keep_releases = 2 or more"),
        ("projects.uavcrew.env", "unknown env 'prodution'", "did you mean 'production'?"),
        ("projects.uavcrew.checks", "unknown checks level 'strictt'", "did you mean 'strict'?"),
        ("projects.uavcrew.hooks[0].phase", "a laptop hook runs once the outcome is known", "use phase ="),
        ("hosts.prod.hostname", "'prod example.org' is not a DNS name", "write a DNS name"),
        ("defaults.user", "the deploy user must not be 'root'", 'write user = "adonis"'),
        ("hosts.prod.gateway", "unknown host 'bastoin'", "a gateway is a host entry of its own"),
        ("groups.production", "unknown host or group 'prd'", "did you mean 'prod'?"),
    ]
    assert text.startswith(f"{tmp_path / 'hosts.toml'}: {len(expected)} problems\n")
    for key, problem, fix in expected:
        line = f"  {key}: {problem}"
        assert line in text, line
        after = text[text.index(line):].split("\n")[1]
        assert after.startswith("    -> ") and fix in after, (line, after)
    # the deploy user is wrong for both hosts, but it is one mistake, reported once
    assert text.count("the deploy user must not be 'root'") == 1


def test_one_mistake_is_not_reported_again_by_the_checks_that_depend_on_it(tmp_path):
    text = """\
[projects.uavcrew]
source = "../uavcrew"
env = "production"
services = ["web", "selery"]
health = { api = "/health" }

[projects.shop]
source = "../shop"
env = "production"

[hosts.prod]
hostname = "prod.example.org"
projects = ["uavcrew", "shop", "uavcrw"]
"""
    err = problems(tmp_path, text)
    # services is wrong, so whether api is among them is not known: no second error about health;
    # hosts.prod.projects is wrong, so "on no host" is not claimed of either project
    assert str(err).count("\n  projects.") + str(err).count("\n  hosts.") == 3, str(err)
    assert "projects.uavcrew.services: unknown service 'selery'" in str(err)
    assert "projects.shop.port_base: shop is not in the standard's port registry" in str(err)
    assert "hosts.prod.projects: unknown project 'uavcrw'" in str(err)
    assert "health" not in str(err) and "on no host" not in str(err)


def test_a_single_mistake_reads_as_before(tmp_path):
    err = problems(tmp_path, SEVERAL.split("\n[projects.uavcrew]")[0].replace("keep_releases = 1\n", "")
                   .replace("conect_timeout = 5\n", "").replace('"root"', '"adonis"')
                   + '\n[hosts.prod]\nhostname = "prod.example.org"\nport = 0\n')
    assert str(err) == (f"{tmp_path / 'hosts.toml'}: hosts.prod.port: must be 1-65535, got 0\n"
                        "  -> write port = 22")
