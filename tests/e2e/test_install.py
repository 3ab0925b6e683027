"""The installed command, as a user and a CI job run it: the built wheel alone, in a fresh venv
outside the repository, run from a project's own directory against a sandbox host.

The project is a copy of the demo under a name of its own (tcli: its own directory, units, ports
and database on the session's host), so it shares the host with the other modules' uavcrew.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import DEMO, REPO

pytestmark = pytest.mark.e2e
NAME = "tcli"
UV = Path(sys.executable).with_name("uv")
CI_STEP = "SSH key and host key from the CI's secrets"


def ci_step_script(name: str = CI_STEP) -> str:
    """The shell of one step of docs/ci.md's job, exactly as the page shows it."""
    text = (REPO / "docs" / "ci.md").read_text()
    lines = text[text.index(f"- name: {name}"):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "run: |") + 1
    indent = len(lines[start]) - len(lines[start].lstrip())
    body = []
    for line in lines[start:]:
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            break
        body.append(line[indent:])
    return "\n".join(body).strip() + "\n"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv, outside the repository, holding only the built wheel and its dependencies."""
    where = tmp_path_factory.mktemp("install")
    subprocess.run([str(UV), "build", "--wheel", "-q", "-o", str(where / "dist"), str(REPO)], check=True)
    wheel, = (where / "dist").glob("ayna_fab-*.whl")
    venv = where / "venv"
    subprocess.run([str(UV), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([str(UV), "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(wheel)],
                   check=True)
    assert not (venv / "bin" / "fab").with_name("fabfile.py").exists()
    return venv / "bin"


@pytest.fixture(scope="module")
def project(sandbox, first_setup, tmp_path_factory) -> dict:
    """A copy of the demo in a git repository of its own, with deploy/hosts.toml naming the session's
    first host, and a HOME the CI step fills from two variables (the key and the host's key line)."""
    assert all(r.returncode == 0 for r in first_setup), [r.stderr for r in first_setup]
    base = tmp_path_factory.mktemp("cli-project")
    app = base / "app"
    shutil.copytree(DEMO, app, ignore=shutil.ignore_patterns(".venv", "__pycache__", "staticfiles"))
    git = ["git", "-C", str(app), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "app"], check=True)
    host = sandbox.hosts[0]
    (app / "deploy").mkdir()
    (app / "deploy" / "hosts.toml").write_text(
        '[defaults]\nidentity_file = "~/.ssh/id_ed25519"\nknown_hosts = "~/.ssh/known_hosts"\n\n'
        f'[hosts.box]\nhostname = "127.0.0.1"\nport = {host.ssh_port}\n')
    key_line = next(line for line in sandbox.settings.known_hosts_path.read_text().splitlines()
                    if line.startswith(f"[127.0.0.1]:{host.ssh_port} "))
    secrets = {"AYNA_DEPLOY_KEY": sandbox.settings.key_path.read_text().strip(), "AYNA_KNOWN_HOSTS": key_line}
    home = base / "home"
    home.mkdir()
    return {"app": app, "home": home, "secrets": secrets}


def run(bin_dir: Path, project: dict, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed ayna-fab in the project's directory: no terminal, only the environment given."""
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(project["home"]), "LANG": "C.UTF-8",
           **(env or {})}
    return subprocess.run([str(bin_dir / "ayna-fab"), *args], cwd=project["app"], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=1800)


def test_the_command_names_its_own_version_and_lists_the_users_tasks(installed, project):
    r = run(installed, project, "--version")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "ayna-fab 0.1.0", r.stdout + r.stderr
    listed = run(installed, project, "--list")
    assert listed.returncode == 0 and "  deploy " in listed.stdout and "  sandbox.up" not in listed.stdout
    assert "  sandbox.up" in run(installed, project, "--list", "sandbox").stdout


def test_the_ci_step_of_the_docs_writes_the_key_and_the_host_key(project):
    script = ci_step_script()
    assert "AYNA_DEPLOY_KEY" in script and "AYNA_KNOWN_HOSTS" in script
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True,
                   env={"PATH": "/usr/bin:/bin", "HOME": str(project["home"]), **project["secrets"]})
    ssh = project["home"] / ".ssh"
    assert oct((ssh / "id_ed25519").stat().st_mode & 0o777) == "0o600"
    assert (ssh / "known_hosts").read_text().strip() == project["secrets"]["AYNA_KNOWN_HOSTS"]


def test_init_writes_the_project_into_deploy_hosts_toml(installed, project):
    r = run(installed, project, "init", "--write", "--name", NAME, "--host", "box")
    assert r.returncode == 0, r.stdout + r.stderr
    inventory = (project["app"] / "deploy" / "hosts.toml").read_text()
    assert f"[projects.{NAME}]" in inventory and re.search(rf'projects = \["{NAME}"\]', inventory)
    assert (project["app"] / "deploy" / f"{NAME}.env").stat().st_mode & 0o777 == 0o600


def test_setup_and_deploy_from_the_projects_own_directory(installed, project, sandbox):
    setup = run(installed, project, "-H", "box", "setup")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    deploy = run(installed, project, "-H", "box", "deploy")   # as CI: no terminal, environment only
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert f"{NAME} v1 " in deploy.stdout and "is live and healthy" in deploy.stdout
    web = re.search(r"port_base = (\d+)", (project["app"] / "deploy" / "hosts.toml").read_text()).group(1)
    body = sandbox.check(0, f"curl -s -m 10 --retry 20 --retry-connrefused --retry-delay 1 "
                            f"http://127.0.0.1:{web}/health/")
    assert '"database": "ok"' in body or '"database":"ok"' in body, body


def test_a_question_without_a_terminal_names_its_flag_and_exits_2(installed, project, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inventory = (project["app"] / "deploy" / "hosts.toml").read_text().replace(
        'known_hosts = "~/.ssh/known_hosts"', f'known_hosts = "{empty}"')
    other = tmp_path / "hosts.toml"
    other.write_text(inventory.replace(f'env_file = "{NAME}.env"', f'env_file = "{project["app"]}/deploy/{NAME}.env"')
                     .replace('source = ".."', f'source = "{project["app"]}"'))
    r = run(installed, project, "-H", "box", "trust", env={"AYNA_FAB_HOSTS": str(other)})
    assert r.returncode == 2 and "--yes" in r.stderr and "SHA256:" in r.stdout, r.stdout + r.stderr
    assert empty.read_text() == ""


def test_remove_takes_the_project_off_the_host_and_frees_its_ports(installed, project, sandbox):
    """Last: the session's hosts go on to other modules, whose projects' own hosts.toml files may
    choose the same free port range (each file sees only its own projects): the host must be left
    with no listener of this one."""
    web = re.search(r"port_base = (\d+)", (project["app"] / "deploy" / "hosts.toml").read_text()).group(1)
    r = run(installed, project, "-H", "box", "remove", "--project", NAME)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{NAME} removed" in r.stdout, r.stdout
    listening = sandbox.check(0, f"ss -Hltn 'sport = :{web}'")
    assert listening.strip() == "", listening
    assert sandbox.run(0, f"test -e /etc/systemd/system/{NAME}-web.socket")[0] != 0
