"""The deploy lock's parts that the operation tests pass through without asserting: how it is
taken (its mode, its record, the wait for a taker's record), who holds it, the liveness marks
read back, and each answer of release and require. Each test here was seen failing with one of
mutmut's one-line bugs in hostprog/lock.py (docs/mutation-report.md)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
import types

import pytest

from ayna_fab.hostprog import lock
from ayna_fab.hostprog.wire import Refused


def taken(tmp_path, token="t1", **record):
    root = str(tmp_path)
    assert lock.take(root, {"token": token, **record}) is None
    return root


def owner_file(root):
    return os.path.join(lock.path(root), lock.OWNER)


# --- taking it -----------------------------------------------------------------------------------

def test_the_lock_is_a_private_directory_holding_its_takers_record(tmp_path):
    root = taken(tmp_path, by="ana", at="noon")
    assert lock.path(root) == os.path.join(root, ".deploy-lock")
    assert stat.S_IMODE(os.stat(lock.path(root)).st_mode) == 0o700
    assert os.listdir(lock.path(root)) == ["owner.json"]   # the record, its temporary name gone
    assert lock.holder(root) == {"token": "t1", "by": "ana", "at": "noon"}


def test_taking_the_lock_does_not_depend_on_the_calls_working_directory(tmp_path, monkeypatch):
    """The record is written beside its final name, never where the call happens to run."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()   # nothing can be made in the working directory now
    root = tmp_path / "project"
    root.mkdir()
    assert lock.take(str(root), {"token": "t1"}) is None
    assert lock.holder(str(root)) == {"token": "t1"}


def test_a_second_taker_is_refused_with_the_holders_record(tmp_path):
    root = taken(tmp_path, by="ana")
    assert lock.take(root, {"token": "t2"}) == {"token": "t1", "by": "ana"}
    assert lock.holder(root)["token"] == "t1"


def clock(monkeypatch):
    """lock's clock, moved only by its naps: the naps it took (a wait that never gives up is
    stopped at a thousand)."""
    naps = []

    def nap(seconds):
        assert len(naps) < 1000, "the wait never gave up"
        naps.append(seconds)

    monkeypatch.setattr(lock, "time", types.SimpleNamespace(monotonic=lambda: sum(naps), sleep=nap, time=time.time))
    return naps


def test_a_lock_whose_taker_never_wrote_its_record_is_refused_after_a_second(tmp_path, monkeypatch):
    root = str(tmp_path)
    os.mkdir(lock.path(root))
    naps = clock(monkeypatch)
    assert lock.take(root, {"token": "t2"}) == {}
    assert set(naps) == {0.02} and len(naps) in (50, 51)   # looked every 20 ms for one second


def test_a_record_that_is_not_an_object_names_no_one(tmp_path):
    root = taken(tmp_path)
    with open(owner_file(root), "w") as f:
        json.dump(["t1"], f)
    assert lock.holder(root) == {}


def test_an_unreadable_record_is_held_by_no_token_not_even_none(tmp_path):
    root = taken(tmp_path)
    os.unlink(owner_file(root))
    assert lock.holds(root, None) is False and lock.holds(root, "t1") is False


def test_no_token_holds_a_lock_that_is_not_there(tmp_path):
    assert lock.holds(str(tmp_path), "t1") is False


# --- which process is which ----------------------------------------------------------------------

def proc_start(pid):
    """Field 22 of /proc/pid/stat, read past the process's name as /proc/pid/comm gives it."""
    with open(f"/proc/{pid}/comm") as f:
        comm = f.read().rstrip("\n")
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    prefix = f"{pid} ({comm}) "
    assert text.startswith(prefix)
    return text[len(prefix):].split()[19]


def test_a_process_start_time_is_read_past_a_name_holding_parentheses(tmp_path):
    """A process's name is its own to choose: `x) 1 2 3` must not shift the fields."""
    odd = tmp_path / "x) 1 2 3"
    odd.symlink_to(shutil.which("sleep"))
    child = subprocess.Popen([str(odd), "30"])
    try:
        assert lock.start_time(child.pid) == proc_start(child.pid)
        assert lock.alive(child.pid, proc_start(child.pid))
    finally:
        child.kill()
        child.wait()
    assert lock.start_time(os.getpid()) == proc_start(os.getpid())
    assert lock.start_time(child.pid) is None and not lock.alive(child.pid, "1")


def test_a_pid_alive_with_another_start_time_is_another_process():
    assert not lock.alive(os.getpid(), "1")
    assert not lock.alive(os.getpid(), None)


# --- the liveness marks --------------------------------------------------------------------------

def marks(root, kind):
    return {n: json.load(open(os.path.join(lock.path(root), n)))
            for n in os.listdir(lock.path(root)) if n.startswith(kind + "-")}


def test_a_worker_mark_names_its_process_its_start_its_step_and_when(tmp_path):
    root = taken(tmp_path)
    before = time.time()
    lock.mark_working(root, "migrate")
    (name, mark), = marks(root, "worker").items()
    assert name == f"worker-{os.getpid()}.json"
    assert set(mark) == {"pid", "start", "what", "since"}
    assert (mark["pid"], mark["start"], mark["what"]) == (os.getpid(), proc_start(os.getpid()), "migrate")
    assert before <= mark["since"] <= time.time()
    assert [(w["pid"], w["what"]) for w in lock.workers(root)] == [(os.getpid(), "migrate")]
    assert lock.holders(root) == []


def test_a_worker_can_be_marked_for_another_process(tmp_path):
    root = taken(tmp_path)
    child = subprocess.Popen(["sleep", "30"])
    try:
        lock.mark_working(root, "install", pid=child.pid)
        assert list(marks(root, "worker")) == [f"worker-{child.pid}.json"]
        assert [(w["pid"], w["what"]) for w in lock.workers(root)] == [(child.pid, "install")]
    finally:
        child.kill()
        child.wait()
    assert lock.workers(root) == []   # the mark died with it


def test_a_mark_says_how_long_its_step_has_run(tmp_path):
    root = taken(tmp_path)
    lock.mark_working(root, "migrate")
    name = os.path.join(lock.path(root), f"worker-{os.getpid()}.json")
    mark = json.load(open(name))
    mark["since"] = time.time() - 1000.2
    json.dump(mark, open(name, "w"))
    assert lock.workers(root)[0]["seconds"] in (1000, 1001)


def test_unreadable_marks_are_passed_over(tmp_path):
    root = taken(tmp_path)
    lock.mark_working(root, "migrate")
    for i in range(5):   # a mark cut short when its process died mid-write
        with open(os.path.join(lock.path(root), f"worker-{i}.json"), "w") as f:
            f.write('{"pid": ')
    assert [w["what"] for w in lock.workers(root)] == ["migrate"]


def test_working_marks_its_step_only_while_it_runs(tmp_path):
    root = taken(tmp_path)
    with lock.working(root, "collectstatic"):
        assert [w["what"] for w in lock.workers(root)] == ["collectstatic"]
    assert lock.workers(root) == [] and marks(root, "worker") == {}


def test_the_holders_mark_is_its_own_kind(tmp_path):
    root = taken(tmp_path)
    assert lock.mark_holding(root) == os.path.join(lock.path(root), f"holder-{os.getpid()}.json")
    assert [(h["pid"], h["what"]) for h in lock.holders(root)] == [(os.getpid(), "connection")]
    assert lock.workers(root) == []


def test_a_lock_with_a_step_still_running_is_not_orphaned(tmp_path):
    root = taken(tmp_path)
    with open(os.path.join(lock.path(root), "holder-999999999.json"), "w") as f:
        f.write('{"pid": 999999999, "start": "1", "what": "connection", "since": 0}')
    with lock.working(root, "migrate"):
        assert lock.had_holder(root) and not lock.orphaned(root)
        assert lock.inspect(root)["orphaned"] is False
    assert lock.orphaned(root) is True


def test_inspect_names_every_fact_it_adds_to_the_record(tmp_path):
    root = taken(tmp_path, by="ana")
    with lock.working(root, "migrate"):
        seen = lock.inspect(root)
    assert set(seen) == {"token", "by", "idle_seconds", "workers", "connected", "orphaned"}
    assert [w["what"] for w in seen["workers"]] == ["migrate"]
    assert seen["idle_seconds"] in (0, 1) and seen["connected"] is False


def test_the_idle_time_is_since_the_record_was_last_touched(tmp_path):
    root = taken(tmp_path)
    os.utime(owner_file(root), (time.time() - 500.2, time.time() - 500.2))
    assert lock.inspect(root)["idle_seconds"] in (500, 501)


# --- letting it go -------------------------------------------------------------------------------

def test_release_answers_for_each_case(tmp_path):
    root = str(tmp_path)
    assert lock.release(root, "t1") == "not-locked"
    taken(tmp_path)
    assert lock.release(root, "t2") == "held-by-other"
    assert os.path.isdir(lock.path(root))
    assert lock.release(root, "t1") == "released" and not os.path.exists(lock.path(root))
    taken(tmp_path)
    assert lock.release(root, "t2", force=True) == "released" and not os.path.exists(lock.path(root))


def test_a_lock_with_another_processs_step_running_is_busy_even_when_forced(tmp_path):
    root = taken(tmp_path)
    child = subprocess.Popen(["sleep", "30"])
    try:
        lock.mark_working(root, "migrate", pid=child.pid)
        assert lock.release(root, "t1") == "busy"
        assert lock.release(root, "t2", force=True) == "busy"
        assert os.path.isdir(lock.path(root))
    finally:
        child.kill()
        child.wait()


def test_the_step_that_releases_the_lock_does_not_count_as_busy(tmp_path):
    root = taken(tmp_path)
    with lock.working(root, "record"):
        assert lock.release(root, "t1") == "released"


def test_a_lock_released_by_someone_else_meanwhile_is_released_all_the_same(tmp_path, monkeypatch):
    """Two releases at once (a settled orphan, `fab unlock`): the second finds nothing to remove."""
    root = taken(tmp_path)

    def workers_then_gone(r):
        shutil.rmtree(lock.path(r))
        return []

    monkeypatch.setattr(lock, "workers", workers_then_gone)
    assert lock.release(root, "t1") == "released"


def test_require_passes_the_holder_and_refuses_anyone_else_naming_who_holds_it(tmp_path):
    root = taken(tmp_path, by="ana")
    lock.require(root, "t1")
    with pytest.raises(Refused) as refused:
        lock.require(root, "t2")
    assert refused.value.code == "lock-lost"
    assert "no longer holds the deploy lock" in refused.value.detail
    assert refused.value.extra == {"holder": {"token": "t1", "by": "ana"}}
