"""The host-side release program, run locally against a temporary project directory."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ayna_fab.hostscripts import source

PROGRAM = source("release")


def call(sub: str, args: dict) -> dict:
    p = subprocess.run([sys.executable, "-", sub, json.dumps(args)], input=PROGRAM, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    return json.loads([line for line in p.stdout.splitlines() if line.startswith("{")][-1])


@pytest.fixture
def root(tmp_path):
    (tmp_path / "releases").mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / ".env.production").write_text("A=1\n")
    return tmp_path


def tgz(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def plan(root, lock=True):
    return call("plan", {"root": str(root), "env_file": str(root / "shared/.env.production"), "units": [],
                         "lock": {"token": "t1", "by": "me"} if lock else None})


def test_the_lock_is_exclusive_and_names_its_holder(root):
    assert plan(root)["next"] == 1
    second = plan(root)
    assert second == {"error": "locked", "holder": {"token": "t1", "by": "me"}}
    assert call("finish", {"root": str(root), "unlock": True, "token": "other"})["unlocked"] == "held-by-other"
    assert call("finish", {"root": str(root), "unlock": True, "token": "t1"})["unlocked"] == "released"
    assert "error" not in plan(root)


def test_release_numbers_are_never_reused(root):
    assert plan(root, lock=False)["next"] == 1
    _stage(root, 1, None, {"a.py": "1"})
    _stage(root, 3, None, {"a.py": "3"})  # a fleet may skip numbers to agree on one
    shutil.rmtree(root / "releases" / "v3")
    assert plan(root, lock=False)["next"] == 4  # v3 is gone, yet its number is spent
    archive = root / "releases" / ".upload-v2.tar.gz"
    archive.write_bytes(tgz({"a.py": "2"}))
    p = subprocess.run([sys.executable, "-", "stage", json.dumps({
        "root": str(root), "number": 2, "base": None, "archive": str(archive), "deleted": [], "meta": {},
        "links": {}})], input=PROGRAM, capture_output=True, text=True)
    assert p.returncode != 0 and "was used before" in p.stderr


def _stage(root, number, base, files, deleted=()):
    archive = root / "releases" / f".upload-v{number}.tar.gz"
    archive.write_bytes(tgz(files))
    return call("stage", {"root": str(root), "number": number, "base": base, "archive": str(archive),
                          "deleted": list(deleted), "meta": {"release": f"v{number}"},
                          "links": {".env": str(root / "shared/.env.production")}})


def test_staging_links_unchanged_files_and_unpacks_changed_ones(root):
    assert _stage(root, 1, None, {"a.py": "a1", "pkg/b.py": "b1", "c.py": "c1"})["unpacked"] == 3
    res = _stage(root, 2, 1, {"a.py": "a2"}, deleted=["c.py"])
    assert (res["unpacked"], res["linked"], res["files"]) == (1, 1, 2)
    v1, v2 = root / "releases/v1", root / "releases/v2"
    assert (v2 / "a.py").read_text() == "a2" and (v1 / "a.py").read_text() == "a1"
    assert os.stat(v2 / "pkg/b.py").st_ino == os.stat(v1 / "pkg/b.py").st_ino  # hard link
    assert not (v2 / "c.py").exists()
    assert os.readlink(v2 / ".env") == str(root / "shared/.env.production")
    assert json.loads((v2 / ".ayna-release.json").read_text())["state"] == "building"


@pytest.mark.parametrize("name", ["../escape.py", "/etc/passwd"])
def test_staging_refuses_paths_outside_the_release(root, name):
    archive = root / "releases" / ".upload-v1.tar.gz"
    archive.write_bytes(tgz({name: "x"}))
    p = subprocess.run([sys.executable, "-", "stage", json.dumps({
        "root": str(root), "number": 1, "base": None, "archive": str(archive), "deleted": [], "meta": {},
        "links": {}})], input=PROGRAM, capture_output=True, text=True)
    assert p.returncode != 0 and "unsafe paths" in p.stderr
    assert not (root / "escape.py").exists()


def test_finish_records_states_logs_and_sets_old_releases_aside(root):
    for n in (1, 2, 3):
        _stage(root, n, None, {"a.py": str(n)})
    os.symlink("v3", root / "releases" / "current")
    res = call("finish", {"root": str(root), "states": {"3": "active", "2": "previous"}, "remove": [1, 3],
                          "log": {"event": "deploy", "release": "v3"}})
    assert res["removed"] == [1, 3]
    assert not (root / "releases/v1").exists()
    assert (root / "releases/v3").exists()  # never the live release, whatever it is told
    assert json.loads((root / "releases/v2/.ayna-release.json").read_text())["state"] == "previous"
    assert json.loads((root / "logs/deploys.jsonl").read_text())["release"] == "v3"


def test_status_reads_the_live_release(root):
    _stage(root, 1, None, {"a.py": "1"})
    os.symlink("v1", root / "releases" / "current")
    res = call("status", {"root": str(root), "units": [], "health": []})
    assert res["current"] == 1 and res["meta"]["release"] == "v1" and res["lock"] is None
