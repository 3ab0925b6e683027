"""The hosts' root filesystem: independent of the building machine, checked whenever it is used."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ayna_fab.errors import UsageError
from ayna_fab.sandbox import commands, manager, rootfs
from ayna_fab.sandbox.settings import SandboxSettings

# What Debian's packages write, as a build on a machine whose 5432 was taken left it.
PG_CONF_5433 = """\
data_directory = '/var/lib/postgresql/15/main'
listen_addresses = 'localhost'
port = 5433				# (change requires restart)
lc_messages = 'C.UTF-8'
timezone = 'Etc/UTC'
"""
REDIS_CONF = "bind 127.0.0.1 -::1\nprotected-mode yes\nport 6379\n"


def fake_tree(root: Path, pg_conf: str = PG_CONF_5433, redis_conf: str = REDIS_CONF, stamp: str | None = None,
              suite: str = "bookworm") -> Path:
    """A root filesystem as far as the cache check and customise() look at it."""
    for sub in ("etc/postgresql/15/main", "etc/redis", "etc/ssh/sshd_config.d", "var/lib/dbus", "root"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "etc/os-release").write_text(f'PRETTY_NAME="Debian GNU/Linux"\nVERSION_CODENAME={suite}\nID=debian\n')
    (root / "etc/postgresql/15/main/postgresql.conf").write_text(pg_conf)
    (root / "etc/redis/redis.conf").write_text(redis_conf)
    (root / "etc/hostname").write_text("the-builders-hostname\n")
    (root / "etc/resolv.conf").write_text("nameserver 10.9.8.7\n")
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "var/lib/dbus/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("builder's key")
    if stamp is not None:
        (root / rootfs.STAMP).write_text(stamp + "\n")
    return root


def settings(tmp_path: Path) -> SandboxSettings:
    return SandboxSettings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")


def test_customise_pins_the_services_ports_whatever_the_packages_chose(tmp_path):
    root = fake_tree(tmp_path / "r", redis_conf="port 6380\n")
    assert rootfs.service_problem(root) == "its PostgreSQL listens on 5433, not 5432"
    rootfs.customise(root)
    assert rootfs.service_problem(root) is None
    conf = (root / "etc/postgresql/15/main/postgresql.conf").read_text()
    assert [ln for ln in conf.splitlines() if ln.startswith("port")] == ["port = 5432"]
    assert "data_directory = '/var/lib/postgresql/15/main'" in conf  # the rest is kept
    assert (root / "etc/redis/redis.conf").read_text().splitlines()[-1] == "port 6379"


def test_customise_leaves_nothing_of_the_building_machines_identity(tmp_path):
    root = fake_tree(tmp_path / "r")
    rootfs.customise(root)
    assert not (root / "etc/hostname").exists()
    assert (root / "etc/machine-id").read_text() == ""
    assert (root / "var/lib/dbus/machine-id").is_symlink()
    assert str((root / "var/lib/dbus/machine-id").readlink()) == "/etc/machine-id"
    assert "10.9.8.7" not in (root / "etc/resolv.conf").read_text()
    assert list((root / "etc/ssh").glob("ssh_host_*")) == []
    assert (root / "etc/timezone").read_text() == "Etc/UTC\n"
    assert str((root / "etc/localtime").readlink()) == "/usr/share/zoneinfo/Etc/UTC"
    assert (root / "etc/default/locale").read_text() == "LANG=C.UTF-8\n"


def test_the_build_fixes_its_locale_time_zone_and_path_instead_of_taking_the_callers():
    assert rootfs.BUILD_ENV["LANG"] == rootfs.BUILD_ENV["LC_ALL"] == "C.UTF-8"
    assert rootfs.BUILD_ENV["TZ"] == "Etc/UTC"


@pytest.mark.parametrize("conf, redis, why", [
    (PG_CONF_5433, REDIS_CONF, "its PostgreSQL listens on 5433, not 5432"),
    (PG_CONF_5433.replace("5433", "5432"), "port 6380\n", "its Redis listens on 6380, not 6379"),
    (PG_CONF_5433.replace("5433", "5432").replace("Etc/UTC", "Europe/Paris"), REDIS_CONF,
     "its PostgreSQL time zone is 'Europe/Paris', not 'Etc/UTC'"),
    (PG_CONF_5433.replace("5433", "5432").replace("'C.UTF-8'", "'de_DE.UTF-8'"), REDIS_CONF,
     "its PostgreSQL locale is 'de_DE.UTF-8', not 'C.UTF-8'"),
    (PG_CONF_5433.replace("5433", "5432"), REDIS_CONF, None),
])
def test_the_cache_check_reads_ports_time_zone_and_locale(tmp_path, conf, redis, why):
    root = fake_tree(tmp_path / "r", pg_conf=conf, redis_conf=redis, stamp=rootfs.recipe())
    assert rootfs.problem(root) == why


def test_a_cache_of_an_earlier_recipe_says_so(tmp_path):
    root = fake_tree(tmp_path / "r", stamp="recipe=1 packages=systemd")
    assert rootfs.problem(root) == ("it was made by an earlier build (recipe 1, now 3): "
                                    "its PostgreSQL listens on 5433, not 5432")
    assert rootfs.problem(tmp_path / "nothing") == "it does not exist"
    assert rootfs.problem(fake_tree(tmp_path / "half")) == "it has no stamp (a build that did not finish?)"


def good_builder(calls: list):
    def build(target: Path, s: SandboxSettings) -> None:
        calls.append(target)
        fake_tree(target)
        rootfs.customise(target)
        (target / rootfs.STAMP).write_text(rootfs.recipe() + "\n")
    return build


def test_a_cache_with_the_wrong_port_is_rebuilt_by_itself_with_one_line_saying_why(tmp_path):
    s = settings(tmp_path)
    fake_tree(s.rootfs_dir, stamp=rootfs.recipe())  # current recipe, but PostgreSQL on 5433
    said, calls = [], []
    assert rootfs.ensure(s, said.append, builder=good_builder(calls), in_use=set) is True
    assert calls == [s.rootfs_dir.with_name(s.rootfs_dir.name + ".building")]
    assert said[0] == f"rebuilding the root filesystem {s.rootfs_dir.name}: its PostgreSQL listens on 5433, not 5432"
    assert rootfs.problem(s.rootfs_dir) is None
    assert rootfs.ensure(s, said.append, builder=good_builder(calls), in_use=set) is False  # now it is used
    assert len(calls) == 1


def test_an_old_recipes_cache_is_replaced_and_removed_once_no_host_runs_from_it(tmp_path):
    s = settings(tmp_path)
    legacy = fake_tree(s.rootfs_cache / s.rootfs_dir.name.rsplit("-r", 1)[0], stamp="recipe=1 packages=x")
    said, calls = [], []
    used = {str(legacy)}
    rootfs.ensure(s, said.append, builder=good_builder(calls), in_use=lambda: used)
    assert len(calls) == 1 and rootfs.problem(s.rootfs_dir) is None
    assert "its PostgreSQL listens on 5433" in said[0]
    assert legacy.exists()  # a host still runs from it
    used.clear()
    rootfs.ensure(s, said.append, builder=good_builder(calls), in_use=lambda: used)
    assert not legacy.exists() and len(calls) == 1
    assert said[-1] == f"removed {legacy.name}, a root filesystem of an earlier recipe"


def test_a_bad_cache_that_hosts_run_from_is_refused_with_the_fix(tmp_path):
    s = settings(tmp_path)
    fake_tree(s.rootfs_dir, stamp=rootfs.recipe())
    with pytest.raises(UsageError) as exc:
        rootfs.ensure(s, print, builder=good_builder([]), in_use=lambda: {str(s.rootfs_dir)})
    assert "listens on 5433" in str(exc.value) and "sandbox.down" in exc.value.hint


def test_a_build_that_comes_out_wrong_is_not_cached(tmp_path):
    s = settings(tmp_path)

    def bad(target: Path, _s) -> None:
        fake_tree(target, stamp=rootfs.recipe())  # customise() not run: PostgreSQL stays on 5433
    with pytest.raises(UsageError) as exc:
        rootfs.ensure(s, print, builder=bad, in_use=set)
    assert "listens on 5433" in str(exc.value)
    assert not s.rootfs_dir.exists()


def test_overlay_lower_layers_are_read_from_mountinfo(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
        "99 28 0:52 / /var/lib/x/merged rw,relatime shared:50 - overlay overlay "
        "rw,lowerdir=/var/cache/ayna-fab/rootfs-bookworm-x86_64,upperdir=/h/upper,workdir=/h/work\n"
        "100 28 0:53 / /m2 rw - overlay overlay rw,lowerdir=/a:/b,upperdir=/u,workdir=/w\n")
    assert rootfs.overlay_lowers(info) == {"/var/cache/ayna-fab/rootfs-bookworm-x86_64", "/a", "/b"}


def test_the_second_stage_runs_in_a_network_namespace_of_its_own():
    argv = commands.second_stage(Path("/c/rootfs.building"))
    assert argv[:3] == ["unshare", "--net", "--"]
    assert "ip link set lo up" in argv[5] and "--second-stage" in argv[5]
    assert argv[-1] == "/c/rootfs.building"
    first = commands.debootstrap(Path("/c/r"), "http://mirror", cache_dir=Path("/c/debs"))
    assert "--foreign" in first and "--cache-dir=/c/debs" in first


def run_probe(tmp_path: Path, answers: dict[str, bool]) -> subprocess.CompletedProcess:
    services = tuple(commands.Service(name, port, unit, "true" if ok else "false")
                     for (name, ok), (_, port, unit, _) in zip(answers.items(), manager.SERVICES))
    return subprocess.run(["sh", "-c", commands.probe_services(services, 1)], capture_output=True, text=True)


def test_the_services_probe_names_the_first_service_that_does_not_answer(tmp_path):
    ok = run_probe(tmp_path, {"PostgreSQL": True, "Redis": True})
    assert ok.returncode == 0 and ok.stdout == ""
    redis = run_probe(tmp_path, {"PostgreSQL": True, "Redis": False})
    assert redis.returncode == 1 and redis.stdout.strip() == "Redis"
    both = run_probe(tmp_path, {"PostgreSQL": False, "Redis": False})
    assert both.returncode == 1 and both.stdout.strip() == "PostgreSQL"


# --- the suite: Debian 12 and 13 hosts from one cache ----------------------------------------------

def test_the_suite_is_a_sandbox_setting_carried_by_the_root_filesystems_name(tmp_path, monkeypatch):
    monkeypatch.setenv("AYNA_FAB_SANDBOX_SUITE", "trixie")
    s = SandboxSettings.from_env(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")
    assert s.suite == "trixie" and s.python_version == "3.13"
    assert s.rootfs_dir.name.startswith("rootfs-trixie-") and settings(tmp_path).rootfs_dir.name.startswith("rootfs-bookworm-")
    assert commands.debootstrap(tmp_path, "http://m", suite="trixie")[-3:] == ["trixie", str(tmp_path), "http://m"]
    with pytest.raises(UsageError, match="bookworm, trixie"):
        SandboxSettings(suite="sid")


def test_a_cache_holding_another_debian_release_is_not_used_for_this_suite(tmp_path):
    s = SandboxSettings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", suite="trixie")
    fake_tree(s.rootfs_dir, pg_conf=PG_CONF_5433.replace("5433", "5432"), stamp=rootfs.recipe())
    assert rootfs.problem(s.rootfs_dir) is None
    assert rootfs.problem(s.rootfs_dir, "trixie") == "it holds Debian bookworm, not trixie"
    built = []

    def trixie(target: Path, st: SandboxSettings) -> None:
        built.append(st.suite)
        fake_tree(target, suite=st.suite)
        rootfs.customise(target)
        (target / rootfs.STAMP).write_text(rootfs.recipe() + "\n")
    said = []
    assert rootfs.ensure(s, said.append, builder=trixie, in_use=set) is True
    assert built == ["trixie"] and "not trixie" in said[0]
    assert rootfs.problem(s.rootfs_dir, "trixie") is None


def test_each_python_has_its_own_wheels_in_the_one_wheelhouse(tmp_path, monkeypatch):
    from ayna_fab.sandbox import wheelhouse
    ran = []
    monkeypatch.setattr(wheelhouse.local, "run", lambda argv, **kw: ran.append(argv))
    for suite in ("bookworm", "trixie", "bookworm", "trixie"):
        wheelhouse.ensure(SandboxSettings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", suite=suite),
                          print)
    assert [argv[argv.index("--python-version") + 1] for argv in ran] == ["3.11", "3.13"]
    assert (tmp_path / "cache/wheelhouse" / wheelhouse.DIGEST).exists()
