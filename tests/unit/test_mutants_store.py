"""Releases on disk (hostprog/store.py), held where a one-line bug in it went unnoticed: `current`
and the project's venv link, the never-reused counter, the listing, records and the deploy log."""

from __future__ import annotations

import json
import os
import sys

import pytest

from ayna_fab.hostprog import store
from tests.polling import wait_until
from tests.stdin_pipe import stdin_a_pipe


def release(root, number, meta=None, venv=True):
    path = store.release_dir(str(root), number)
    os.makedirs(path)
    if meta is not None:
        store.write_json(os.path.join(path, store.META), meta)
    if venv:
        os.makedirs(os.path.join(path, ".venv", "bin"))
        open(os.path.join(path, ".venv", "bin", "python"), "w").close()
    return path


def test_without_current_there_is_no_current_dir(tmp_path):
    os.makedirs(store.releases_dir(str(tmp_path)))
    assert store.current_dir(str(tmp_path)) is None
    path = release(tmp_path, 3)
    store.flip(str(tmp_path), 3)
    assert store.current_dir(str(tmp_path)) == os.path.realpath(path)


def test_unlinking_current_removes_current_and_the_project_venv_link(tmp_path):
    release(tmp_path, 3)
    store.flip(str(tmp_path), 3)
    assert os.path.islink(tmp_path / "venv") and os.path.islink(tmp_path / "releases" / "current")
    store.unlink_current(str(tmp_path))
    assert not os.path.lexists(tmp_path / "venv") and not os.path.lexists(tmp_path / "releases" / "current")
    store.unlink_current(str(tmp_path))   # nothing there: nothing to do


def test_the_counter_s_own_number_is_never_claimed_again(tmp_path):
    os.makedirs(store.releases_dir(str(tmp_path)))
    store.claim(str(tmp_path), 5)
    with pytest.raises(ValueError, match=r"release number v5 was used before \(counter 5\)"):
        store.claim(str(tmp_path), 5)
    with pytest.raises(ValueError, match=r"v4 .*\(counter 5\)"):
        store.claim(str(tmp_path), 4)
    store.claim(str(tmp_path), 6)
    assert store.counter(str(tmp_path)) == 6


# Stands in for rm on PATH: says how it was started, then is rm.
FAKE_RM = """#!{python}
import json, os, sys
def devnull(fd):
    a, b = os.fstat(fd), os.stat(os.devnull)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
json.dump({{"args": sys.argv[1:], "own_session": os.getsid(0) == os.getpid(),
            "stdio_devnull": [devnull(0), devnull(1), devnull(2)]}}, open({seen!r} + ".part", "w"))
os.rename({seen!r} + ".part", {seen!r})
os.execv("/bin/rm", ["rm", *sys.argv[1:]])
"""


def test_removed_releases_are_moved_aside_at_once_and_deleted_by_rm_in_a_session_of_its_own(tmp_path, monkeypatch):
    """rm outlives the call (its own session: a Ctrl-C to the call's group does not stop it) and
    holds none of its stdio (the call's answer ends with the call, not with a long rm)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "seen"
    (bin_dir / "rm").write_text(FAKE_RM.format(python=sys.executable, seen=str(seen)))
    (bin_dir / "rm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    root = tmp_path / "root"
    for number in (1, 2, 3):
        release(root, number, {"state": "good"})
    store.flip(str(root), 3)
    with stdin_a_pipe():
        assert store.remove(str(root), [1, 3, 4, 2]) == [1, 2]   # never the live one; a missing one is no error
    assert [r["number"] for r in store.listing(str(root))] == [3]
    wait_until(seen.exists, 20)
    said = json.loads(seen.read_text())
    trash = [str(root / "releases" / f".trash-v{n}-{os.getpid()}") for n in (1, 2)]
    assert said == {"args": ["-rf", *trash], "own_session": True, "stdio_devnull": [True, True, True]}
    wait_until(lambda: not any(os.path.exists(t) for t in trash), 20)
    assert sorted(os.listdir(root / "releases")) == ["current", "v3"]


def test_removing_nothing_starts_no_rm(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(store.subprocess, "Popen", lambda *a, **k: started.append(a))
    release(tmp_path, 3)
    store.flip(str(tmp_path), 3)
    assert store.remove(str(tmp_path), [3, 4]) == [] and started == []


def test_the_listing_is_every_release_directory_by_number_and_says_which_are_complete(tmp_path):
    root = str(tmp_path)
    release(tmp_path, 10, {"state": "good"})
    release(tmp_path, 9, {"state": "failed"}, venv=False)      # no venv: not complete
    release(tmp_path, 2)                                       # no record: not complete
    os.makedirs(os.path.join(release(tmp_path, 3, {"state": "good"}, venv=False), ".venv", "bin"))   # nor no python
    os.symlink("v10", os.path.join(store.releases_dir(root), "v11"))   # a link is not a release
    for other in ("current", "vx", ".trash-v3-1", "x4"):
        os.makedirs(os.path.join(store.releases_dir(root), other))
    open(os.path.join(store.releases_dir(root), "v12"), "w").close()   # nor is a file
    assert store.listing(root) == [{"number": 2, "meta": {}, "complete": False},
                                   {"number": 3, "meta": {"state": "good"}, "complete": False},
                                   {"number": 9, "meta": {"state": "failed"}, "complete": False},
                                   {"number": 10, "meta": {"state": "good"}, "complete": True}]
    assert store.listing(str(tmp_path / "none")) == []


def test_the_counter_reads_as_0_when_empty_or_unreadable_and_the_next_number_is_past_it_and_every_release(tmp_path):
    root = str(tmp_path)
    os.makedirs(store.releases_dir(root))
    assert store.counter(root) == 0
    counter = os.path.join(store.releases_dir(root), store.COUNTER)
    for text, value in (("", 0), ("\n", 0), (" 7\n", 7), ("seven", 0)):
        with open(counter, "w") as f:
            f.write(text)
        assert store.counter(root) == value
    with open(counter, "w") as f:
        f.write("7\n")
    assert store.next_number(root, []) == 8
    assert store.next_number(root, [{"number": 3}, {"number": 9}]) == 10
    store.claim(root, 12)
    assert open(counter).read() == "12\n" and os.listdir(store.releases_dir(root)) == [store.COUNTER]


def test_current_is_read_from_its_link_whatever_its_spelling(tmp_path):
    root = str(tmp_path)
    os.makedirs(store.releases_dir(root))
    assert store.current_number(root) is None
    link = os.path.join(store.releases_dir(root), "current")
    for target, number in (("v12", 12), ("v12/", 12), (os.path.join(store.releases_dir(root), "v3"), 3),
                           ("w12", None), ("v", None), ("v1x", None)):
        os.symlink(target, link)
        assert store.current_number(root) == number, target
        os.unlink(link)


def test_a_state_is_set_on_the_record_with_its_extra_fields_and_a_missing_record_is_said(tmp_path):
    root = str(tmp_path)
    path = release(tmp_path, 4, {"state": "building", "by": "ann"})
    assert store.set_state(root, 4, "failed", {"failed_step": "build"}) is True
    assert store.read_json(os.path.join(path, store.META)) == {"state": "failed", "by": "ann", "failed_step": "build"}
    assert store.set_state(root, 4, "good") is True
    assert store.read_json(os.path.join(path, store.META))["state"] == "good"
    assert store.set_state(root, 5, "good") is False
    assert sorted(os.listdir(path)) == [store.META, ".venv"]   # written whole: no temporary left


def test_a_flip_points_current_and_the_project_venv_through_it_and_leaves_nothing_behind(tmp_path):
    root = str(tmp_path)
    release(tmp_path, 1)
    release(tmp_path, 2)
    store.flip(root, 1)
    venv = os.path.join(root, "venv")
    want = os.path.join(store.releases_dir(root), "current", ".venv")
    assert os.readlink(os.path.join(store.releases_dir(root), "current")) == "v1" and os.readlink(venv) == want
    before = os.lstat(venv).st_ino
    store.flip(root, 2)
    assert os.readlink(os.path.join(store.releases_dir(root), "current")) == "v2"
    assert os.lstat(venv).st_ino == before   # already right: left alone
    os.unlink(venv)
    os.symlink("/elsewhere", venv)
    store.flip(root, 2)
    assert os.readlink(venv) == want
    assert sorted(os.listdir(root)) == ["releases", "venv"]
    assert sorted(os.listdir(store.releases_dir(root))) == ["current", "v1", "v2"]


def test_the_deploy_log_gets_one_sorted_json_line_per_entry(tmp_path):
    root = str(tmp_path / "root")
    store.append_log(root, {"result": "ok", "event": "deploy"})
    store.append_log(root, {"event": "rollback"})
    with open(os.path.join(root, "logs", "deploys.jsonl")) as f:
        assert f.read() == '{"event": "deploy", "result": "ok"}\n{"event": "rollback"}\n'


def test_a_record_is_written_whole_and_read_back_or_the_default(tmp_path):
    path = str(tmp_path / "r.json")
    assert store.read_json(path) is None and store.read_json(path, {}) == {}
    store.write_json(path, {"b": 1, "a": [1]})
    assert open(path).read() == '{\n "a": [\n  1\n ],\n "b": 1\n}' and os.listdir(tmp_path) == ["r.json"]
    assert store.read_json(path) == {"b": 1, "a": [1]}
    open(path, "w").write("{")
    assert store.read_json(path, 5) == 5


def test_a_flip_does_not_depend_on_the_call_s_working_directory(tmp_path, monkeypatch):
    """Its temporary link is made beside current (a rename across filesystems would fail), not
    wherever the call runs: here a directory already removed."""
    release(tmp_path / "root", 3)
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    store.flip(str(tmp_path / "root"), 3)
    assert store.current_number(str(tmp_path / "root")) == 3
