"""The lock's liveness marks, each read back the way the holder and `status` read them: the
heartbeat a holding call leaves, the holder's presence while the laptop's connection lives, and
what is left once that connection is gone. (Survivors of mutation testing, docs/mutation-report.md.)"""

from __future__ import annotations

import os

from ayna_fab.hostprog import lock


def taken(tmp_path, token="t1"):
    root = str(tmp_path)
    assert lock.take(root, {"token": token}) is None
    return root


def owner_file(root):
    return os.path.join(lock.path(root), lock.OWNER)


def test_a_call_that_holds_the_lock_touches_its_record_as_a_heartbeat(tmp_path):
    root = taken(tmp_path)
    os.utime(owner_file(root), (1_000_000, 1_000_000))
    assert lock.holds(root, "t1")
    assert os.stat(owner_file(root)).st_mtime > 1_000_000
    assert lock.inspect(root)["idle_seconds"] < 60


def test_a_call_with_another_token_leaves_the_heartbeat_alone(tmp_path):
    root = taken(tmp_path)
    os.utime(owner_file(root), (1_000_000, 1_000_000))
    assert not lock.holds(root, "other")
    assert os.stat(owner_file(root)).st_mtime == 1_000_000


def test_the_holder_is_present_while_its_process_lives_then_the_lock_is_orphaned(tmp_path):
    root = taken(tmp_path)
    assert not lock.had_holder(root) and not lock.orphaned(root)
    lock.mark_holding(root)
    assert [h["what"] for h in lock.holders(root)] == ["connection"]
    assert lock.workers(root) == []
    assert lock.inspect(root)["connected"] is True and lock.inspect(root)["orphaned"] is False
    lock.unmark_holding(root)
    assert lock.holders(root) == [] and lock.had_holder(root) is False
    # The holder's connection closed without unmarking (its process died): the mark outlives it.
    dead = os.path.join(lock.path(root), "holder-999999999.json")
    with open(dead, "w") as f:
        f.write('{"pid": 999999999, "start": "1", "what": "connection", "since": 0}')
    assert lock.had_holder(root) and lock.holders(root) == []
    assert lock.orphaned(root) and lock.inspect(root)["connected"] is False


def test_no_lock_has_had_no_holder_and_no_inspection(tmp_path):
    root = str(tmp_path)
    assert lock.had_holder(root) is False and lock.orphaned(root) is False
    assert lock.inspect(root) is None


def test_an_unreadable_record_has_no_idle_time(tmp_path):
    root = taken(tmp_path)
    os.unlink(owner_file(root))
    assert lock.inspect(root)["idle_seconds"] is None
