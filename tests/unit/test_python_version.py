"""The Python a project declares (scan/python.py), hosts.toml's `python`, and the plan's refusal."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from ayna_fab.config import model as config
from ayna_fab.config.layout import Layout
from ayna_fab.errors import ConfigError, UsageError
from ayna_fab.hostprog import prepare
from ayna_fab.ops import planchecks
from ayna_fab.ops.gitsource import Source
from ayna_fab.scan import python as pyv


@pytest.mark.parametrize("files, spec", [
    ({"pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.12"\n'}, ">=3.12"),
    ({"pyproject.toml": '[project]\nrequires-python = ">=3.10, <3.13"\n'}, ">=3.10,<3.13"),
    ({".python-version": "3.12\n"}, ">=3.12"),
    ({".python-version": "# pinned\n3.12.4\n"}, ">=3.12"),
    ({"runtime.txt": "python-3.12.1\n"}, ">=3.12"),
    ({"Dockerfile": "ARG X=1\nFROM python:3.12-slim AS build\nRUN true\n"}, ">=3.12"),
    ({"Dockerfile": "FROM --platform=linux/amd64 docker.io/library/python:3.13-bookworm\n"}, ">=3.13"),
])
def test_each_file_says_the_python_in_its_own_form(files, spec):
    [d] = pyv.declared(files)
    assert d.spec == spec


def test_files_that_declare_nothing_readable_are_passed_over():
    assert pyv.declared({"pyproject.toml": "[project\n", ".python-version": "system\n",
                         "runtime.txt": "", "Dockerfile": "FROM debian:12\n"}) == []
    assert pyv.declared({"pyproject.toml": '[tool.x]\nrequires-python = ">=3.12"\n'}) == []


def test_every_declaration_counts_and_hosts_toml_replaces_them():
    files = {"runtime.txt": "python-3.12.1", "Dockerfile": "FROM python:3.11\n"}
    assert [d.source for d in pyv.declared(files)] == ["runtime.txt", "Dockerfile (FROM)"]
    [d] = pyv.declared(files, override="3.11")
    assert (d.source, d.spec) == ("hosts.toml (python)", ">=3.11")


@pytest.mark.parametrize("version, spec, ok", [
    ("3.11.2", ">=3.12", False), ("3.12.0", ">=3.12", True), ("3.13.5", ">=3.12", True),
    ("3.13.1", ">=3.10,<3.13", False), ("3.12.9", ">=3.10,<3.13", True),
    ("3.12.3", "==3.12.*", True), ("3.13.0", "==3.12.*", False), ("3.11.2", "!=3.11.*", False),
    ("3.12.1", "~=3.12", True), ("4.0.0", "~=3.12", False), ("3.12.1", "~=3.12.0", True),
    ("3.13.0", "~=3.12.0", False), ("3.11.9", ">3.11", False), ("3.12.0", "<=3.12", True),
    ("garbage", ">=3.8", False),
])
def test_a_version_meets_a_specifier_as_pep_440_says(version, spec, ok):
    assert pyv.satisfies(version, spec) is ok


def test_the_refusal_names_the_hosts_version_what_the_project_says_and_the_ways_out():
    missing = pyv.unmet("3.11.2", pyv.declared({"runtime.txt": "python-3.12.1\n"}))
    problem, hint = pyv.refusal("box", "3.11.2", missing, "notes")
    assert "3.11.2" in problem and ">=3.12" in problem and "runtime.txt: python-3.12.1" in problem
    assert "/usr/bin/python3" in hint and 'python = "3.11"' in hint
    assert pyv.unmet("3.13.1", pyv.declared({"runtime.txt": "python-3.12.1\n"})) == []


TOML = """
[projects.notes]
source = "notes"
env = "production"
port_base = 8150
services = ["web"]
django_dir = "."
wsgi_app = "notes_site.wsgi:application"
{extra}
[hosts.box]
hostname = "box.example.org"
projects = ["notes"]
"""


def load(tmp_path: Path, extra: str = "") -> config.Config:
    path = tmp_path / "hosts.toml"
    path.write_text(textwrap.dedent(TOML.format(extra=extra)))
    return config.load(path)


def test_hosts_toml_takes_a_version_or_a_specifier_and_nothing_else(tmp_path):
    assert load(tmp_path, 'python = "3.12"').projects["notes"].python == "3.12"
    assert load(tmp_path, 'python = ">=3.11,<3.14"').projects["notes"].python == ">=3.11,<3.14"
    assert load(tmp_path).projects["notes"].python is None
    with pytest.raises(ConfigError) as err:
        load(tmp_path, 'python = "3.12; rm -rf /"')
    assert "python" in str(err.value) and 'python = "3.12"' in (err.value.hint or str(err.value))


class _T:
    """What planchecks reads of a runner HostRun."""

    def __init__(self, cfg, plan):
        self.name, self.project, self.host = "box", cfg.projects["notes"], cfg.hosts["box"]
        self.layout = Layout.of(cfg, self.project)
        self.plan = {"database": "sqlite", "uv_config": None, **plan}


def test_the_plan_refuses_a_host_whose_python_is_older_than_the_project_needs(tmp_path):
    cfg = load(tmp_path)
    needs = pyv.declared({".python-version": "3.12\n"})
    with pytest.raises(UsageError) as err:
        planchecks.refuse(_T(cfg, {"python": "3.11.2"}), backup_due=False, python=needs)
    assert err.value.step == "plan" and "3.11.2" in err.value.message and ">=3.12" in err.value.message
    with pytest.raises(UsageError, match="Python is missing"):
        planchecks.refuse(_T(cfg, {"python": None}), backup_due=False, python=needs)
    planchecks.refuse(_T(cfg, {"python": "3.13.5"}), backup_due=False, python=needs)
    planchecks.refuse(_T(cfg, {"python": "3.11.2"}), backup_due=False, python=[])


def test_a_deploy_reads_the_declaration_from_the_commit_in_the_projects_directory(tmp_path):
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "runtime.txt").write_text("python-3.12.1\n")
    (repo / "runtime.txt").write_text("python-3.9\n")   # the repository's, not the project's
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    (repo / "app" / "runtime.txt").write_text("python-3.13\n")   # not committed: not deployed
    source = Source.open(repo / "app")
    texts = source.texts(source.resolve("HEAD"), pyv.FILES)
    assert texts == {"runtime.txt": "python-3.12.1\n"}


def test_the_venv_is_made_from_the_python_the_plan_checked():
    script = prepare.install_script("/r/releases/v1", None)
    assert f"--python {prepare.PYTHON} " in script and prepare.PYTHON == "/usr/bin/python3"


def test_init_reads_the_same_declarations_from_a_checkout_and_says_them_in_one_line(tmp_path):
    (tmp_path / "runtime.txt").write_text("python-3.12.1\n")
    (tmp_path / "Dockerfile").write_text("FROM python:3.13-slim\n")
    found = pyv.read(tmp_path)
    assert [d.spec for d in found] == [">=3.12", ">=3.13"]
    assert pyv.describe(found) == "Python >=3.12,>=3.13 (runtime.txt: python-3.12.1; Dockerfile (FROM): FROM python:3.13)"
    assert pyv.describe(pyv.read(tmp_path / "none")).startswith("Python: the project does not say")
