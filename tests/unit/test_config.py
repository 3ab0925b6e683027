"""hosts.toml loading: good files load into typed objects, bad ones fail before any SSH."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import fabric
import paramiko
import pytest

from ayna_fab.config import model as config, targets
from ayna_fab.config.model import Config, Defaults, Host, Project, hosts_file_path, load
from ayna_fab.errors import ConfigError, UsageError

BAD_DIR = Path(__file__).parent / "bad_hosts"
BAD_FILES = sorted(BAD_DIR.glob("*.toml"))

MINIMAL = """\
[projects.uavcrew]
source = "../uavcrew"
env = "production"

[hosts.prod]
hostname = "prod.example.org"
projects = ["uavcrew"]
"""

FULL = """\
[defaults]
user = "deploy"
admin_user = "ops"
base_dir = "/srv/ayna"
keep_releases = 3
identity_file = "~/.ssh/id_ed25519"
known_hosts = "keys/known_hosts"
connect_timeout = 3
default_target = "production"

[projects.uavcrew]
source = "../uavcrew"
port_base = 8130
services = ["web", "api", "celery", "beat"]
env = "production"
env_file = "secrets/uavcrew.env"
health = { api = "/api/health" }
migrate_host = "prod"
create_database = true

[projects.newproj]
source = "/src/newproj"
port_base = 8150
services = ["web", "celery"]
env = "staging"

[hosts.prod]
hostname = "prod.example.org"
port = 2222
projects = ["uavcrew"]

[hosts.prod-2]
hostname = "2001:db8::2"
user = "adonis"
admin_user = "root"
identity_file = "/etc/ayna/id_prod2"
known_hosts = "/etc/ayna/known_hosts"
projects = ["uavcrew", "newproj"]

[hosts.stage]
hostname = "192.0.2.7"
projects = ["newproj"]

[groups]
production = ["prod", "prod-2"]
everything = ["production", "stage"]
"""


def write(tmp_path: Path, text: str, name: str = "hosts.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- good files ------------------------------------------------------------------

def test_minimal_file_gets_the_documented_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = load(write(tmp_path, MINIMAL))
    assert cfg.defaults == Defaults(known_hosts=tmp_path / "home/.ssh/known_hosts")
    assert cfg.defaults.user == "adonis" and cfg.defaults.admin_user == "root"
    assert cfg.defaults.base_dir == "/opt/ayna" and cfg.defaults.keep_releases == 5
    assert cfg.defaults.connect_timeout == 10 and cfg.default_target is None
    project = cfg.projects["uavcrew"]
    assert project.source == tmp_path.parent / "uavcrew"  # relative to the file's folder
    assert project.port_base == 8130  # the standard's, without saying so
    assert project.services == ("web", "api", "celery", "beat")
    assert dict(project.health) == {"web": "/health/", "api": "/health"}
    assert project.env_file is None and project.migrate_host is None
    assert project.create_database is False
    assert project.shared_env == ".env.production"
    assert (project.port("web"), project.port("api")) == (8130, 8131)
    host = cfg.hosts["prod"]
    assert host == Host("prod", "prod.example.org", 22, "adonis", "root", None,
                        tmp_path / "home/.ssh/known_hosts", ("uavcrew",))
    assert dict(cfg.groups) == {}


def test_full_file_loads_every_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", "/home/op")
    cfg = load(write(tmp_path, FULL))
    d = cfg.defaults
    assert (d.user, d.admin_user, d.base_dir, d.keep_releases) == ("deploy", "ops", "/srv/ayna", 3)
    assert d.identity_file == Path("/home/op/.ssh/id_ed25519")
    assert d.known_hosts == tmp_path / "keys/known_hosts"
    assert d.connect_timeout == 3 and cfg.default_target == "production"

    uav, new = cfg.projects["uavcrew"], cfg.projects["newproj"]
    assert uav.env_file == tmp_path / "secrets/uavcrew.env"
    assert dict(uav.health) == {"web": "/health/", "api": "/api/health"}
    assert uav.migrate_host == "prod" and uav.create_database is True
    assert new.source == Path("/src/newproj") and new.services == ("web", "celery")
    assert dict(new.health) == {"web": "/health/"}  # no api, so no api health check
    assert new.port("web") == 8150 and cfg.ports["newproj"].last == 8159
    assert set(cfg.ports) >= {"ayna-comply", "ayna-fly", "aynasite", "uavcrew", "skybookus"}

    prod, prod2, stage = cfg.hosts.values()  # file order kept
    assert (prod.port, prod.user, prod.identity_file) == (2222, "deploy", d.identity_file)
    assert prod2.hostname == "2001:db8::2" and prod2.user == "adonis"
    assert prod2.admin_user == "root" and prod2.identity_file == Path("/etc/ayna/id_prod2")
    assert prod2.known_hosts == Path("/etc/ayna/known_hosts")
    assert prod2.projects == ("uavcrew", "newproj") and prod2.carries("newproj")
    assert stage.known_hosts == d.known_hosts
    assert cfg.groups["everything"] == ("production", "stage")
    assert [h.name for h in targets.resolve(cfg, cfg.default_target)] == ["prod", "prod-2"]


def test_loaded_objects_are_frozen(tmp_path):
    cfg = load(write(tmp_path, FULL))
    for obj, attr in ((cfg, "path"), (cfg.defaults, "user"), (cfg.projects["uavcrew"], "env"),
                      (cfg.hosts["prod"], "hostname")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, "x")
    with pytest.raises(TypeError):
        cfg.hosts["evil"] = cfg.hosts["prod"]  # type: ignore[index]
    assert isinstance(cfg, Config) and isinstance(cfg.projects["uavcrew"], Project)


@pytest.mark.parametrize("hostname", [
    "prod.example.org", "prod.example.org.", "PROD.Example.org", "localhost", "127.0.0.1",
    "::1", "2001:db8::1", "xn--bcher-kva.example", "a-b.c-d.example"])
def test_good_hostnames(tmp_path, hostname):
    cfg = load(write(tmp_path, MINIMAL.replace("prod.example.org", hostname)))
    assert cfg.hosts["prod"].hostname == hostname


@pytest.mark.parametrize("source,expected", [
    ("../uavcrew", "{parent}/uavcrew"), ("uavcrew", "{folder}/uavcrew"),
    ("./a/../uavcrew", "{folder}/uavcrew"), ("/abs/uavcrew", "/abs/uavcrew"),
    ("~/src/uavcrew", "/home/op/src/uavcrew")])
def test_local_paths_resolve_against_the_files_folder(tmp_path, monkeypatch, source, expected):
    monkeypatch.setenv("HOME", "/home/op")
    monkeypatch.chdir("/")  # the working directory must not matter
    cfg = load(write(tmp_path, MINIMAL.replace('"../uavcrew"', f'"{source}"')))
    assert str(cfg.projects["uavcrew"].source) == expected.format(folder=tmp_path,
                                                                  parent=tmp_path.parent)


def test_a_project_with_hyphen_and_its_own_range(tmp_path):
    text = MINIMAL.replace("uavcrew", "ayna-comply") + (
        '[projects.my_app]\nsource = "x"\nenv = "dev"\nport_base = 9000\n'
        '[hosts.box]\nhostname = "box.example.org"\nprojects = ["my_app"]\n')
    cfg = load(write(tmp_path, text))
    assert cfg.projects["ayna-comply"].port_base == 8100
    assert cfg.projects["my_app"].port("admin") == 9004


# --- where the file comes from ----------------------------------------------------

def test_hosts_file_path_default_and_env(monkeypatch):
    assert hosts_file_path({}) == Path("hosts.toml")
    assert hosts_file_path({"AYNA_FAB_HOSTS": ""}) == Path("hosts.toml")
    fleet = "/etc/ayna/hosts.toml"
    assert hosts_file_path({"AYNA_FAB_HOSTS": fleet}) == Path(fleet)
    monkeypatch.setenv("AYNA_FAB_HOSTS", "~/fleet.toml")
    monkeypatch.setenv("HOME", "/home/op")
    assert hosts_file_path() == Path("/home/op/fleet.toml")


def test_load_without_path_uses_the_env_var(tmp_path, monkeypatch):
    path = write(tmp_path, MINIMAL, "fleet.toml")
    monkeypatch.setenv("AYNA_FAB_HOSTS", str(path))
    assert load().path == path
    monkeypatch.delenv("AYNA_FAB_HOSTS")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="hosts.toml: file not found"):
        load()


def test_missing_file_names_the_file_and_the_env_var(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path / "nope.toml")
    assert "nope.toml: file not found" in str(err.value) and "AYNA_FAB_HOSTS" in str(err.value)
    assert err.value.exit_code == 2 and isinstance(err.value, UsageError)


def test_syntax_error_names_file_and_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, MINIMAL + "port = = 2\n"))
    assert f"{tmp_path}/hosts.toml:8:" in str(err.value)
    assert "line 8" in err.value.hint


# --- the corpus of bad files ------------------------------------------------------

def expected_message(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode()
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: ...'"
    return first.removeprefix("# expect: ")


def test_corpus_is_big_enough():
    assert len(BAD_FILES) >= 40


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda p: p.stem)
def test_bad_file_is_rejected_with_file_key_and_fix(path):
    with pytest.raises(ConfigError) as err:
        load(path)
    text = str(err.value)
    assert expected_message(path) in text
    assert path.name in text
    assert err.value.hint, "every error says how to fix it"
    # hostile values are escaped: the only line break is the one before the hint
    assert text.count("\n") == 1 and "\r" not in text and "\0" not in text


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything tries to open a socket or an SSH connection."""
    attempts: list[str] = []

    def refuse(what):
        def _refuse(*args, **kwargs):
            attempts.append(what)
            raise AssertionError(f"{what} called while handling a bad configuration")
        return _refuse

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    monkeypatch.setattr(paramiko.SSHClient, "connect", refuse("SSHClient.connect"))
    monkeypatch.setattr(fabric.Connection, "open", refuse("Connection.open"))
    return attempts


HOSTILE_TARGETS = ["$(rm -rf /)", "`reboot`", "prod;reboot", "prod\nevil", "../prod",
                   "pr od", "\u0440rod", "prod.example.org", "127.0.0.1", "prod,,stage", ""]


def test_nothing_connects_for_any_bad_file(tmp_path, no_network):
    good = load(write(tmp_path, FULL))
    for path in BAD_FILES:
        with pytest.raises(ConfigError):
            targets.resolve(load(path), "prod")
    for target in HOSTILE_TARGETS:  # and a good file refuses hostile TARGETs offline
        with pytest.raises(ConfigError):
            targets.resolve(good, target)
    assert no_network == []


def test_unknown_top_level_key_without_close_match_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, "[servers]\n" + MINIMAL))
    assert "unknown key 'servers'" in str(err.value)
    assert err.value.hint == f"known keys here: {', '.join(config.TOP_KEYS)}"


def test_every_defaults_key_is_documented_in_the_dataclass():
    assert set(config.DEFAULTS_KEYS) == {f.name for f in dataclasses.fields(Defaults)}


def test_a_bare_inventory_without_projects_loads(tmp_path):
    """The sandbox writes hosts with no project yet; setup and status must accept them."""
    path = tmp_path / "hosts.toml"
    path.write_text('[hosts.fresh]\nhostname = "127.0.0.1"\nport = 2201\n\n[groups]\nnew = ["fresh"]\n')
    config = load(path)
    assert config.hosts["fresh"].projects == ()
    assert dict(config.projects) == {}


def test_a_far_host_may_wait_longer_for_its_ssh_connection_than_the_default(tmp_path):
    text = FULL.replace('port = 2222\nprojects = ["uavcrew"]',
                        'port = 2222\nprojects = ["uavcrew"]\nconnect_timeout = 45', 1)
    cfg = load(write(tmp_path, text))
    far = cfg.hosts["prod"]
    near = next(h for name, h in cfg.hosts.items() if name != "prod")
    assert (far.connect_timeout, near.connect_timeout) == (45, 3)  # the host's own, else [defaults]'s
    assert (targets.endpoint(cfg, far).timeout, targets.endpoint(cfg, near).timeout) == (45, 3)


def test_hosts_file_is_searched_in_the_documented_order(tmp_path):
    """AYNA_FAB_HOSTS, else ./hosts.toml, else ./deploy/hosts.toml; ./hosts.toml when neither exists."""
    assert hosts_file_path({}, cwd=tmp_path) == tmp_path / "hosts.toml"
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "hosts.toml").write_text("")
    assert hosts_file_path({}, cwd=tmp_path) == tmp_path / "deploy" / "hosts.toml"
    (tmp_path / "hosts.toml").write_text("")
    assert hosts_file_path({}, cwd=tmp_path) == tmp_path / "hosts.toml"
    assert hosts_file_path({"AYNA_FAB_HOSTS": "/x/fleet.toml"}, cwd=tmp_path) == Path("/x/fleet.toml")
