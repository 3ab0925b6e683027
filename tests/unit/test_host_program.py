"""The host program's release calls, run locally through the real transport (the bootstrap that
carries ayna_fab/hostprog/ in `python3 -c`) against a temporary project directory."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ayna_fab.commands import hostcalls as cmd
from ayna_fab.config.layout import Layout
from ayna_fab.config.model import Project
from ayna_fab.remote import hostcall
from tests.hosthelp import call, tgz

PROJECT = Project(name="demo", source=None, port_base=8130, services=("web",), env="production")


@pytest.fixture
def lay(tmp_path):
    layout = Layout(str(tmp_path), "demo", "production")
    for d in ("releases", "shared"):
        os.makedirs(os.path.join(layout.root, d))
    with open(layout.env_file, "w") as f:
        f.write("A=1\n")
    return layout


OWNER = {"token": "t1", "by": "me"}


def plan(lay, lock=True):
    return call(cmd.plan(lay, PROJECT, OWNER if lock else None))


def stage(lay, number, base, files, deleted=(), token="t1"):
    return call(cmd.stage(lay, token, number, base, tgz(files), list(deleted), {"release": f"v{number}"}))


def test_an_upload_that_did_not_arrive_whole_is_refused_before_anything_is_made(lay):
    """The upload travels on the stage call's stdin: cut short, altered or longer, it is refused
    before the release number is taken, and the next stage of the same number goes ahead."""
    plan(lay)
    command, data = cmd.stage(lay, "t1", 1, None, tgz({"a.py": "a"}), ["gone.py"], {"release": "v1"})
    for sent in (b"", data[:-1], data[:-1] + b"x", data + b"x"):
        assert call((command, sent))["error"] == "upload-damaged"
        assert not os.path.exists(lay.release(1))
    assert call((command, data))["unpacked"] == 1 and os.path.exists(f"{lay.release(1)}/a.py")


def test_the_bootstrap_fits_in_one_argument():
    assert len(hostcall.bootstrap()) < 100_000  # Linux caps one argv string at 128 KiB


def test_the_lock_is_exclusive_and_names_its_holder(lay):
    assert plan(lay)["next"] == 1
    assert plan(lay) == {"error": "locked", "detail": "another operation holds the lock", "holder": OWNER}
    assert call(cmd.unlock(lay, "other"))["result"] == "held-by-other"
    assert call(cmd.finish(lay, PROJECT, "t1", {}, {}, None, []))["unlocked"] == "released"
    assert "error" not in plan(lay)


def test_a_call_whose_lock_was_taken_away_stops(lay):
    plan(lay)
    assert call(cmd.unlock(lay, "t1"))["result"] == "released"
    res = stage(lay, 1, None, {"a.py": "1"})
    assert res["error"] == "lock-lost"
    assert not os.path.exists(lay.release(1))


def test_release_numbers_are_never_reused(lay):
    plan(lay)
    stage(lay, 1, None, {"a.py": "1"})
    stage(lay, 3, None, {"a.py": "3"})  # a fleet may skip numbers to agree on one
    shutil.rmtree(lay.release(3))
    assert call(cmd.plan(lay, PROJECT, None))["next"] == 4  # v3 is gone, yet its number is spent
    res = stage(lay, 2, None, {"a.py": "2"})
    assert res["error"] == "number-used" and "was used before" in res["detail"]
    assert not os.path.exists(lay.release(2))


def test_staging_copies_unchanged_files_and_unpacks_changed_ones(lay):
    plan(lay)
    assert stage(lay, 1, None, {"a.py": "a1", "pkg/b.py": "b1", "c.py": "c1"})["unpacked"] == 3
    res = stage(lay, 2, 1, {"a.py": "a2"}, deleted=["c.py"])
    assert (res["unpacked"], res["copied"], res["files"]) == (1, 1, 2)
    v1, v2 = lay.release(1), lay.release(2)
    assert open(f"{v2}/a.py").read() == "a2" and open(f"{v1}/a.py").read() == "a1"
    assert os.stat(f"{v2}/pkg/b.py").st_ino != os.stat(f"{v1}/pkg/b.py").st_ino  # a copy, not a link
    with open(f"{v2}/pkg/b.py", "r+") as f:  # written in place in the new release...
        f.write("XX")
    assert open(f"{v1}/pkg/b.py").read() == "b1"  # ...the release a rollback goes back to is unchanged
    assert not os.path.exists(f"{v2}/c.py")
    assert os.readlink(f"{v2}/.env") == lay.env_file
    assert os.readlink(f"{v2}/media") == f"{lay.shared}/media"
    assert json.load(open(f"{v2}/.ayna-release.json"))["state"] == "building"


@pytest.mark.parametrize("name", ["../escape.py", "/etc/passwd"])
def test_staging_refuses_paths_outside_the_release(lay, name):
    plan(lay)
    res = stage(lay, 1, None, {name: "x"})
    assert res["error"] == "unsafe-upload" and name.lstrip("/") in res["detail"]
    assert not os.path.exists(os.path.join(lay.root, "escape.py"))


def test_finish_records_states_logs_and_sets_old_releases_aside(lay):
    plan(lay)
    for n in (1, 2, 3):
        stage(lay, n, None, {"a.py": str(n)})
    os.symlink("v3", lay.current)
    res = call(cmd.finish(lay, PROJECT, "t1", {3: "active", 2: "previous"}, {}, {"event": "deploy", "release": "v3"}, [1, 3]))
    assert res["removed"] == [1]  # never the live release, whatever it is told
    assert not os.path.exists(lay.release(1)) and os.path.exists(lay.release(3))
    assert json.load(open(f"{lay.release(2)}/.ayna-release.json"))["state"] == "previous"
    assert json.loads(open(f"{lay.logs}/deploys.jsonl").read())["release"] == "v3"
    assert res["unlocked"] == "released"


def test_status_reads_the_live_release(lay):
    plan(lay)
    stage(lay, 1, None, {"a.py": "1"})
    os.symlink("v1", lay.current)
    res = call(cmd.status(lay, PROJECT))
    assert res["current"] == 1 and res["meta"]["release"] == "v1" and res["lock"]["token"] == "t1"


def test_a_crash_on_the_host_is_reported_with_its_traceback(lay):
    from ayna_fab.errors import OperationFailed
    with pytest.raises(OperationFailed) as err:
        call(cmd.migrations(lay, PROJECT, [1]).__class__(
            "python3 -c 'import sys; print(\"@@result {\\\"error\\\": \\\"crash\\\", \\\"detail\\\": \\\"Traceback: boom\\\"}\")'",
            "migrations"))
    assert "the host program failed" in err.value.message and "boom" in err.value.message
    with pytest.raises(OperationFailed) as err:
        call(cmd.migrations(lay, PROJECT, [1]).__class__("echo nothing; exit 7", "migrations"))
    assert "gave no answer (exit 7)" in err.value.message


def test_a_lock_with_a_step_still_running_on_the_host_is_never_released(lay):
    """A step that outlives the laptop (a link dropped mid-migrate) keeps the lock until it ends."""
    import subprocess
    import sys
    plan(lay)
    worker = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from ayna_fab.hostprog import lock
lock.mark_working({lay.root!r}, "migrate")
print("marked", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "marked"
        status = call(cmd.status(lay, PROJECT))["lock"]
        assert status["workers"][0]["what"] == "migrate" and status["idle_seconds"] < 60
        assert call(cmd.finish(lay, PROJECT, "t1", {}, {}, None, []))["unlocked"] == "busy"
        assert call(cmd.unlock(lay, "t1", force=True))["result"] == "busy"
    finally:
        worker.kill()
        worker.wait()
    assert call(cmd.unlock(lay, "t1"))["result"] == "released"


def test_a_lock_taken_a_moment_ago_is_refused_naming_its_holder(tmp_path, monkeypatch):
    """The taker makes the lock's directory, then writes its record: a second taker in between
    waits for the record instead of refusing with no name (hostprog/lock.py)."""
    import json
    import time
    import types
    from pathlib import Path

    from ayna_fab.hostprog import lock
    os.mkdir(lock.path(str(tmp_path)), 0o700)
    naps = []

    def nap(seconds):   # the first taker writes its record while the second one waits
        naps.append(seconds)
        if len(naps) == 1:
            (Path(lock.path(str(tmp_path))) / lock.OWNER).write_text(json.dumps({"token": "a", "who": "root@laptop"}))

    monkeypatch.setattr(lock, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=nap))
    assert lock.take(str(tmp_path), {"token": "b"}) == {"token": "a", "who": "root@laptop"}
    assert len(naps) == 1   # it looked again once the record was there


def test_release_files_are_not_group_writable_whatever_the_archive_says(lay):
    """git archive keeps 664/775 (its tar.umask is 002): a release is 644/755, executables kept."""
    import io
    import stat
    import tarfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, mode, data in (("pkg", 0o775, None), ("pkg/a.py", 0o664, b"a"), ("run.sh", 0o775, b"#!/bin/sh\n"),
                                 ("setuid", 0o4777, b"x")):
            info = tarfile.TarInfo(name)
            info.mode = mode
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    plan(lay)
    call(cmd.stage(lay, "t1", 1, None, buf.getvalue(), [], {"release": "v1"}))
    v1 = lay.release(1)
    os.chmod(f"{v1}/pkg/a.py", 0o666)          # a release staged before: its copies are fixed too
    stage(lay, 2, 1, {"b.py": "b"})

    def mode(p):
        return stat.S_IMODE(os.stat(p).st_mode)
    for v in (v1, lay.release(2)):
        assert (mode(f"{v}/pkg"), mode(f"{v}/run.sh"), mode(f"{v}/setuid")) == (0o755, 0o755, 0o755)
    assert mode(f"{lay.release(2)}/pkg/a.py") == 0o644 and mode(f"{lay.release(2)}/b.py") == 0o644
    assert mode(f"{v1}/pkg/a.py") == 0o666     # the old release itself is left as it is
