"""The env file as the laptop has it (provision/localenv.py): setup reads it as env.push does,
env_command's output first, and a target's hosts share one run of the command."""

from __future__ import annotations

import pytest

from ayna_fab.config.model import load
from ayna_fab.errors import UsageError
from ayna_fab.provision import localenv, setup as hostsetup

GOOD = ("PROJECT_NAME=shop\nDJANGO_SETTINGS_MODULE=config.settings\nDATABASE_URL=postgresql://shop:pw@localhost/shop\n"
        "REDIS_URL=redis://127.0.0.1:6379/0\nWEB_PORT=8150\nAPI_PORT=8151\nSECRET_KEY=from-the-vault\n")


def world(tmp_path, **keys):
    (tmp_path / "shop.env").write_text("SECRET_KEY=from-the-file\n")
    (tmp_path / "hosts.toml").write_text(
        '[projects.shop]\nsource = "."\nenv = "production"\nport_base = 8150\nenv_file = "shop.env"\n'
        + "".join(f"{k} = {v}\n" for k, v in keys.items())
        + '\n[hosts.a]\nhostname = "192.0.2.1"\nprojects = ["shop"]\n'
        '[hosts.b]\nhostname = "192.0.2.2"\nprojects = ["shop"]\n')
    return load(tmp_path / "hosts.toml")


def counting(tmp_path, text: str) -> str:
    """An env_command printing `text` and counting its runs in tmp_path/runs."""
    (tmp_path / "vault").write_text(text)
    return f'["sh", "-c", "echo run >> {tmp_path}/runs; cat {tmp_path}/vault"]'


def test_setup_uploads_env_commands_output_before_env_file(tmp_path):
    cfg = world(tmp_path, env_command=counting(tmp_path, GOOD))
    s = hostsetup.prepare(cfg, cfg.hosts["a"], cfg.projects["shop"], force_env=False)
    assert s.local_env == GOOD


def test_setup_checks_env_commands_output_and_never_shows_it(tmp_path):
    cfg = world(tmp_path, env_command=counting(tmp_path, GOOD.replace("WEB_PORT=8150", "WEB_PORT=9")))
    with pytest.raises(UsageError) as err:
        hostsetup.prepare(cfg, cfg.hosts["a"], cfg.projects["shop"], force_env=False)
    assert err.value.message.startswith("env_command (sh): WEB_PORT=9")
    assert "from-the-vault" not in str(err.value)
    assert err.value.host == "a"


def test_a_failing_env_command_stops_setup_naming_the_host(tmp_path):
    cfg = world(tmp_path, env_command='["sh", "-c", "echo SECRET_KEY=half; exit 3"]')
    with pytest.raises(UsageError) as err:
        hostsetup.prepare(cfg, cfg.hosts["b"], cfg.projects["shop"], force_env=False)
    assert "exited 3" in err.value.message and "half" not in str(err.value) and err.value.host == "b"


def test_one_read_serves_every_host_of_the_target(tmp_path):
    cfg = world(tmp_path, env_command=counting(tmp_path, GOOD))
    read_env = localenv.once()
    plans = [hostsetup.prepare(cfg, cfg.hosts[h], cfg.projects["shop"], False, read_env) for h in ("a", "b")]
    assert [p.local_env for p in plans] == [GOOD, GOOD]
    assert (tmp_path / "runs").read_text() == "run\n"


def test_without_env_command_env_file_is_read_and_without_either_nothing(tmp_path):
    cfg = world(tmp_path)
    assert localenv.read(cfg.projects["shop"]) == "SECRET_KEY=from-the-file\n"
    assert localenv.origin(cfg.projects["shop"]) == tmp_path / "shop.env"
    (tmp_path / "hosts.toml").write_text('[projects.shop]\nsource = "."\nenv = "production"\nport_base = 8150\n'
                                         '\n[hosts.a]\nhostname = "192.0.2.1"\nprojects = ["shop"]\n')
    bare = load(tmp_path / "hosts.toml")
    assert localenv.read(bare.projects["shop"]) is None and localenv.origin(bare.projects["shop"]) is None
    assert hostsetup.prepare(bare, bare.hosts["a"], bare.projects["shop"], force_env=False).local_env is None
