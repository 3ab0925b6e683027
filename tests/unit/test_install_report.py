"""A failed install shows uv's own reason in its first lines (hostprog/uvreport.py), not the tail of
a build backend's output: here, real uv building a package whose build needs a compiler it lacks."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace

from ayna_fab.hostprog import prepare, uvreport
from tests import corpus

# An in-tree build backend (no index needed to fetch one) that fails as a C extension's build does
# on a host with no compiler: a long log, then the compiler's complaint.
BACKEND = '''import sys

def _fail(*args, **kwargs):
    for i in range(120):
        print(f"compiling core/module{i}.c", file=sys.stderr)
    raise SystemExit("error: you need a C compiler to build uWSGI")

get_requires_for_build_wheel = build_wheel = _fail
'''
PYPROJECT = '''[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]

[project]
name = "uwsgi"
version = "2.0.28"
'''


def test_a_failed_build_shows_uvs_reason_first_then_the_ways_out_then_the_builds_last_lines(tmp_path, monkeypatch):
    pkg = tmp_path / "uwsgi"
    pkg.mkdir()
    (pkg / "backend.py").write_text(BACKEND)
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    env = {**os.environ, "UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never", "UV_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run([corpus.uv(), "venv", "--quiet", str(tmp_path / "venv")], check=True, env=env, capture_output=True)
    # the install step as prepare runs it, its script the one uv call that fails
    monkeypatch.setattr(prepare, "install_script", lambda rel, base: (
        f"{shlex.quote(corpus.uv())} pip install --quiet --offline --no-index "
        f"--python {tmp_path}/venv/bin/python {pkg}\n"))
    steps = prepare.Steps()
    assert prepare._install(SimpleNamespace(base_venv=None, hooks=()), str(tmp_path), env, steps, False) is False
    said = steps.result["output"].splitlines()
    assert steps.result["failed"] == "install"
    assert said[0].startswith("error: Failed to build `uwsgi"), said[:5]
    assert any("build backend returned an error" in line for line in said[:4]), said[:5]
    assert not any("compiling core" in line for line in said[:4])
    assert any("uwsgi has no wheel for the host's Python" in line and "`uv remove uwsgi`" in line for line in said)
    assert "error: you need a C compiler to build uWSGI" in steps.result["output"]   # the build's own end
    assert len(said) <= 30


def test_output_without_a_reason_of_uvs_is_left_as_it_is():
    text = "sh: 1: uv: not found\n"
    assert uvreport.explain(text) == text
