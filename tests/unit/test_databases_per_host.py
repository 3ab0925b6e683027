"""Hosts with databases of their own (database = "own"): each backs up and migrates its own before
its pre-flip check; a fleet that only seems to share one database is refused before anything is built."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ayna_fab.errors import UsageError
from ayna_fab.hostprog import dbwhere
from tests.unit.test_recovery import HOSTS, World, world  # noqa: F401  (the fixture)

FOUR = ("h1", "h2", "h3", "h4")


def own_world(tmp_path: Path, hosts=FOUR) -> World:
    w = World(tmp_path, hosts=hosts)
    w.project = dataclasses.replace(w.project, database="own")
    return w


def migrated(world: World, host: str) -> bool:
    """The last deploy's record on `host` has a migrate step."""
    return "migrate" in world.log(host)[-1]["steps"]


def test_each_host_with_its_own_database_is_backed_up_and_migrated_before_its_pre_flip_check(tmp_path):
    w = own_world(tmp_path)
    w.deploy(hosts=FOUR)
    w.commit("v = 2\n")
    w.said.clear()
    w.deploy(hosts=FOUR, batch="2")
    assert [w.current(h) for h in FOUR] == [2, 2, 2, 2]
    assert all(migrated(w, h) for h in FOUR)
    assert all("backup" in w.log(h)[-1]["steps"] for h in FOUR)
    assert "fleet: v2 on 4 hosts; migrations run on 4 databases, each on its host: h1, h2, h3, h4" in w.said
    assert "fleet: migrate (each database): h1, h2, h3, h4" in w.said
    assert w.said.index("fleet: migrate (each database): h1, h2, h3, h4") < \
        min(i for i, line in enumerate(w.said) if line.startswith("fleet: preflight") or "batch 1" in line)
    assert "fleet: batch 2: h3, h4" in w.said
    assert all(w.states[h].preflights[-1] == 2 for h in FOUR)


def test_a_shared_database_is_still_migrated_once(world):
    world.deploy(hosts=HOSTS)
    assert [migrated(world, h) for h in HOSTS] == [True, False, False]


def test_a_host_with_its_own_database_migrates_beside_the_shared_ones(world):
    world.cfg = dataclasses.replace(world.cfg, hosts={**world.cfg.hosts,
                                                      "h3": dataclasses.replace(world.cfg.hosts["h3"], database="own")})
    world.deploy(hosts=HOSTS)
    assert [migrated(world, h) for h in HOSTS] == [True, False, True]


def test_a_fleet_whose_hosts_do_not_share_the_migrate_hosts_database_is_refused(world):
    Path(world.layout("h3").env_file).write_text("DATABASE_URL=postgresql://demo:pw@localhost/elsewhere\n")
    with pytest.raises(UsageError) as err:
        world.deploy(hosts=HOSTS)
    assert "h3 do not use the database of h1" in err.value.message
    assert "/elsewhere" in err.value.message and "pw" not in err.value.message
    assert 'database = "own"' in err.value.hint
    assert [world.current(h) for h in HOSTS] == [1, 1, 1] and not any(world.locked(h) for h in HOSTS)
    world.project = dataclasses.replace(world.project, database="own")   # the setting says so: deployed
    world.deploy(hosts=HOSTS)
    assert [world.current(h) for h in HOSTS] == [2, 2, 2]


def env(tmp_path: Path, url: str) -> str:
    path = tmp_path / ".env"
    path.write_text(f"DATABASE_URL={url}\n" if url else "SECRET_KEY=x\n")
    return str(path)


@pytest.mark.parametrize("url, expected", [
    ("postgresql://u:secret@localhost/shop", "postgresql://this-host(M):5432/shop"),
    ("postgres://u:secret@127.0.0.1:5433/shop", "postgres://this-host(M):5433/shop"),
    ("postgresql:///shop?host=/var/run/postgresql", None),   # a socket may be a tunnel: not judged
    ("postgresql://u:secret@10.9.8.7:6432/shop", "postgresql://10.9.8.7:6432/shop"),
    ("sqlite:////srv/db.sqlite3", "sqlite://this-host(M)/srv/db.sqlite3"),
    ("", None),
])
def test_where_a_database_lives_names_no_secret(tmp_path, monkeypatch, url, expected):
    monkeypatch.setattr(dbwhere, "machine", lambda: "M")
    assert dbwhere.where(env(tmp_path, url)) == expected


def test_where_two_hosts_databases_live_differs_by_machine(tmp_path, monkeypatch):
    path = env(tmp_path, "postgresql://u@localhost/shop")
    monkeypatch.setattr(dbwhere, "machine", lambda: "A")
    a = dbwhere.where(path)
    monkeypatch.setattr(dbwhere, "machine", lambda: "B")
    assert a != dbwhere.where(path)
    assert dbwhere.where(str(tmp_path / "missing")) is None


def test_migrate_and_backup_tasks_act_on_each_host_with_its_own_database(tmp_path):
    from ayna_fab.config import targets
    w = World(tmp_path, hosts=FOUR)
    shared = dataclasses.replace(w.project, migrate_host="h2")
    hosts = [w.cfg.hosts[h] for h in FOUR]
    hosts[3] = dataclasses.replace(hosts[3], database="own")
    said: list[str] = []
    assert [h.name for h, _ in targets.once_per_database([(h, shared) for h in hosts], said.append)] == ["h2", "h4"]
    own = dataclasses.replace(shared, database="own")
    assert [h.name for h, _ in targets.once_per_database([(h, own) for h in hosts], said.append)] == list(FOUR)
