"""Releases on disk (hostprog/store.py), held where a one-line bug in it went unnoticed: `current`
and the project's venv link, the never-reused counter, the listing, records and the deploy log."""

from __future__ import annotations

import os

import pytest

from ayna_fab.hostprog import store


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
