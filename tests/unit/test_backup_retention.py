"""Backups survive retries: a deploy dumps the database only when it has migrations to apply, and
retention never prunes the backup a failure named, the last good pre-migration backup, or anything
younger than its floor (hostprog/backups.py, docs/backups.md).

The deploys run through the real runner and host program (tests/fakehost.py): pg_dump and the
Django migration plan are faked, the files in shared/backups and their pruning are real."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from ayna_fab.errors import OperationFailed
from ayna_fab.hostprog import backups as rules
from tests.unit.test_recovery import World


def on_host(world: World, host="h1") -> list[str]:
    folder = f"{world.layout(host).root}/shared/backups"
    return [b.name for b in rules.newest_first(os.listdir(folder) if os.path.isdir(folder) else [], "demo")]


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path, hosts=("h1",))
    w.deploy()                 # v1: a first deploy, nothing to back up
    return w


def test_ten_failing_migrations_keep_the_good_backup_and_the_one_a_failure_named(world):
    st = world.states["h1"]
    world.commit("v = 2\n")
    world.deploy()                                     # v2 migrates, after a dump of v1's data
    assert world.current() == 2
    (good,) = on_host(world)
    st.fail_steps.add("migrate")                       # v3's migration damages data and fails
    named = []
    for n in range(10):
        world.commit(f"v = {3 + n}\n")
        with pytest.raises(OperationFailed) as failed:
            world.deploy()
        named.append(failed.value.hint.rsplit("--backup ", 1)[1])
        assert world.current() == 2
    kept = on_host(world)
    assert good in kept, kept                          # the last good deploy's pre-migration backup
    assert named[0] in kept and named[-1] in kept, (named, kept)
    assert len(kept) == 11                             # ten retries: none of them pushed another out


def test_a_deploy_with_no_pending_migration_takes_no_dump(world):
    st = world.states["h1"]
    st.pending = 0
    world.commit("v = 2\n")
    world.deploy()
    assert world.current() == 2 and on_host(world) == []
    assert not any("backup" in line and ".dump" in line for line in world.said)
    st.pending = 2
    world.commit("v = 3\n")
    world.deploy()
    assert world.current() == 3 and len(on_host(world)) == 1


# --- the pure rules, on names and dates ------------------------------------------------------

NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)


def name(days_ago: float, release: str) -> str:
    return rules.name_for("demo", NOW - timedelta(days=days_ago), release)


def test_nothing_younger_than_the_floor_is_pruned():
    found = [name(d, "v1") for d in (1, 2, 3, 8, 9)]
    assert rules.to_prune(found, "demo", 1, now=NOW) == [name(8, "v1"), name(9, "v1")]
    assert rules.FLOOR_DAYS == 7
    assert rules.to_prune(found, "demo", 1) == found[1:]           # no clock given: the count alone


def test_pre_migration_backups_since_the_last_good_deploy_are_kept():
    good = name(40, "v1")                  # taken before v2 migrated; v2 is live
    retries = [name(30 - d, "v2") for d in range(5)]   # failed deploys of v3, all named v2, oldest first
    older = [name(50, "v1"), name(60, "none")]
    explicit = name(35, "v2")              # a `fab backup`: not a pre-migration backup
    found = [good, *retries, *older, explicit]
    before = {good, *retries, *older}
    pruned = rules.to_prune(found, "demo", 2, live="v2", before_migrate=before, now=NOW)
    assert set(pruned) == {*older, explicit}
    # once v3 succeeds, only its own pre-migration backup (the newest named v2) stays protected
    pruned = rules.to_prune(found, "demo", 1, live="v3", before_migrate=before, now=NOW)
    assert retries[-1] not in pruned and good in pruned and set(retries[:-1]) <= set(pruned)


def test_the_backup_just_taken_and_the_one_being_restored_stay_whatever_the_rules():
    found = [name(d, "v1") for d in (10, 11, 12)]
    assert rules.to_prune(found, "demo", 1, protect=[found[2]], just_taken=found[1], now=NOW) == [found[0]]
