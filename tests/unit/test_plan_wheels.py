"""A deploy's plan refuses a host that would have to build locked packages without a compiler:
the commit's uv.lock judged for the host's Python and machine (scan/wheels.py, ops/planchecks.py)."""

from __future__ import annotations

import os

import pytest

from ayna_fab.errors import OperationFailed, UsageError
from ayna_fab.ops import planchecks
from tests.unit.test_python_version import _T, load
from tests.unit.test_recovery import World, git

LOCK = '''version = 1
revision = 1
requires-python = ">=3.11"

[[package]]
name = "notes"
version = "0.1.0"
source = { virtual = "." }
dependencies = [
    { name = "django" },
    { name = "fastjson" },
    { name = "uwsgi" },
]

[package.dev-dependencies]
dev = [{ name = "pytest-c" }]

[[package]]
name = "django"
version = "5.1.4"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/d3/e8/django-5.1.4.tar.gz", hash = "sha256:de45", size = 10739 }
wheels = [
    { url = "https://files.pythonhosted.org/packages/58/0b/django-5.1.4-py3-none-any.whl", hash = "sha256:23a4", size = 827 },
]

[[package]]
name = "fastjson"
version = "3.10.12"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/e0/04/fastjson-3.10.12.tar.gz", hash = "sha256:0a78", size = 54 }
wheels = [
    { url = "https://files.pythonhosted.org/packages/a1/fastjson-3.10.12-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", hash = "sha256:1", size = 1 },
    { url = "https://files.pythonhosted.org/packages/a2/fastjson-3.10.12-cp312-cp312-macosx_10_15_x86_64.whl", hash = "sha256:2", size = 1 },
    { url = "https://files.pythonhosted.org/packages/a3/fastjson-3.10.12-cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", hash = "sha256:3", size = 1 },
]

[[package]]
name = "uwsgi"
version = "2.0.28"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/24/c2/uwsgi-2.0.28.tar.gz", hash = "sha256:79ca", size = 816 }

[[package]]
name = "pytest-c"
version = "1.0"
source = { registry = "https://pypi.org/simple" }
sdist = { url = "https://files.pythonhosted.org/packages/00/pytest-c-1.0.tar.gz", hash = "sha256:00", size = 1 }
'''

HOST = {"python": "3.12.3", "machine": "x86_64", "compiler": False}


def refusal(tmp_path, lock=LOCK, **plan) -> UsageError | None:
    try:
        planchecks.refuse(_T(load(tmp_path), {**HOST, **plan}), backup_due=False, lock=lock)
    except UsageError as exc:
        return exc
    return None


def test_a_host_without_a_compiler_is_refused_with_the_packages_and_the_ways_out(tmp_path):
    err = refusal(tmp_path)
    assert err.step == "plan" and err.host == "box" and err.exit_code == 2
    assert "no wheel for Linux x86_64 and Python 3.12 for fastjson 3.10.12, uwsgi 2.0.28" in err.message
    assert "no C compiler" in err.message and "pytest-c" not in err.message   # a dev group is never installed
    assert "uv remove uwsgi (gunicorn serves the web unit)" in err.hint and "uv remove fastjson" not in err.hint
    assert "install a C compiler on box" in err.hint and "lock versions that have a wheel" in err.hint
    assert "then commit uv.lock; and for fastjson 3.10.12: install a C compiler" in err.hint


@pytest.mark.parametrize("plan, named", [
    ({"python": "3.11.2"}, ["uwsgi"]),                    # fastjson has a cp311 wheel for x86_64
    ({"python": "3.12.3", "machine": "aarch64"}, ["uwsgi"]),   # ... and a cp312 one for aarch64
    ({"python": "3.11.2", "machine": "aarch64"}, ["fastjson", "uwsgi"]),
])
def test_the_wheels_are_judged_for_the_hosts_own_python_and_machine(tmp_path, plan, named):
    err = refusal(tmp_path, **plan)
    assert [n for n in ("fastjson", "uwsgi") if f"{n} " in err.message] == named
    assert ("lock versions that have a wheel" in err.hint) is ("fastjson" in named)
    assert err.hint.endswith("then commit uv.lock; or install a C compiler on box "
                             "(apt-get install build-essential python3-dev)") is (named == ["uwsgi"])


def test_a_host_with_a_compiler_or_a_lock_with_every_wheel_goes_on(tmp_path):
    assert refusal(tmp_path, compiler=True) is None
    assert refusal(tmp_path, lock=None) is None
    wheels_only = LOCK.replace('{ name = "fastjson" },\n    { name = "uwsgi" },\n', "")
    assert refusal(tmp_path, lock=wheels_only) is None


def test_the_deploy_refuses_at_plan_before_anything_is_uploaded(tmp_path):
    w = World(tmp_path, hosts=("h1",))
    w.deploy()                                   # v1, with a lock of no packages
    (w.src / "uv.lock").write_text(LOCK)
    git(w.src, "commit", "-qam", "uwsgi")
    w.states["h1"].compiler = False
    with pytest.raises(OperationFailed) as err:   # as every refusal at plan: the lock is released
        w.deploy()
    assert err.value.step == "plan" and "uwsgi 2.0.28" in err.value.message and "uv remove uwsgi" in err.value.hint
    assert w.current() == 1 and not w.locked()
    assert not [n for n in os.listdir(w.layout("h1").releases) if "v2" in n]   # nothing staged for v2
    w.states["h1"].compiler = True                # with a compiler the host builds them itself
    w.deploy()
    assert w.current() == 2
