"""What the deploy user (or code in its app, which runs as that user) cannot reach on a set-up,
deployed sandbox host: the files root and systemd read on its behalf, other services' logs."""

from __future__ import annotations

import os
import signal
import subprocess
import threading

import pytest

from tests.e2e.conftest import FAB, REPO, fab, write_inventory
from tests.e2e.test_deploy import Repo
from tests.e2e.test_ops import fab_root  # noqa: F401 (a fixture: the ops tasks' fabfile)
from tests.polling import wait_until
from tests.prereqs import interruptible

pytestmark = pytest.mark.e2e
ROOT = "/opt/ayna/uavcrew"
ENV = f"{ROOT}/shared/.env.production"
TOKEN = "AYNA_ROOT_ONLY_TOKEN=root-only-7f3a9c"
UNITS = ("uavcrew-celery-blue.service", "uavcrew-celery-green.service")


@pytest.fixture(scope="module")
def deployed(sandbox, first_setup, tmp_path_factory):
    """The first host set up and running a release, and a file only root may read."""
    assert all(r.returncode == 0 for r in first_setup), [r.stderr for r in first_setup]
    if sandbox.run(0, f"systemctl is-active --quiet {' '.join(UNITS)}")[0] != 0:   # neither slot runs
        repo = Repo(tmp_path_factory.mktemp("trust-src") / "uavcrew")
        inv = write_inventory(tmp_path_factory.mktemp("trust") / "hosts.toml", sandbox, source=repo.path)
        r = fab("-H", sandbox.hosts[0].name, "deploy", hosts_file=inv)
        assert r.returncode == 0, r.stdout + r.stderr
    sandbox.check(0, f"umask 077 && printf '%s\\n' {TOKEN!r} > /root/ayna-root-only.env")
    return sandbox


def test_fab_logs_reads_the_projects_units_through_its_journal_reader(deployed, fab_root, tmp_path):
    sandbox, inv = deployed, write_inventory(tmp_path / "hosts.toml", deployed)
    host = sandbox.hosts[0].name
    assert "systemd-journal" not in sandbox.check(0, "id -nG adonis").split()
    web = fab(*fab_root, "-H", host, "logs", "--service", "web", "--since", "-30min", hosts_file=inv)
    assert web.returncode == 0 and "gunicorn" in web.stdout and "celery[" not in web.stdout, web.stderr
    env = {**os.environ, "AYNA_FAB_HOSTS": str(inv)}
    p = subprocess.Popen([str(FAB), *fab_root, "-H", host, "logs", "--follow", "--service", "beat", "--lines", "1"],
                         cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=interruptible)
    lines: list[str] = []

    def read():
        for line in p.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    # beat logs a heartbeat every 5 seconds: the last line, then one more while it follows
    wait_until(lambda: len(lines) >= 2, 60, interval=0.2)
    p.send_signal(signal.SIGINT)
    p.wait(timeout=30)
    assert len(lines) >= 2 and all(line.startswith(f"[{host}] ") for line in lines), (lines, p.stderr.read())
    assert p.returncode == 0, p.stderr.read()
    assert wait_until(lambda: sandbox.run(0, "pgrep -x journalctl")[0] == 1, 30, interval=0.2), \
        "journalctl still runs: closing the connection should have ended it"


def environ(sandbox) -> str:
    pid = sandbox.main_pid(0, "uavcrew", "celery")
    assert pid != "0"
    return sandbox.check(0, f"tr '\\0' '\\n' < /proc/{pid}/environ")


def test_the_deploy_user_cannot_point_systemd_at_a_root_only_file(deployed):
    sandbox = deployed
    attacks = [
        f"ln -s /root/ayna-root-only.env {ROOT}/shared/.planted && mv -fT {ROOT}/shared/.planted {ENV}",
        f"ln -sfn /root/ayna-root-only.env {ENV}",
        f"rm -f {ENV}",
        f"mv -T {ROOT}/shared {ROOT}/shared-aside",
        f"mv -T {ROOT} /opt/ayna/uavcrew-aside",
        f"echo AYNA_EXTRA=1 >> {ENV}",
    ]
    try:
        for attack in attacks:
            code, _, _ = sandbox.run(0, attack, user="adonis")
            assert code != 0, attack
        assert sandbox.check(0, f"stat -c '%F %U:%G %a' {ENV} {ROOT}/shared {ROOT}").splitlines() == [
            "regular file root:adonis 640", "directory root:adonis 1770", "directory root:adonis 1775"]
        sandbox.check(0, f"sudo -n /usr/bin/systemctl restart {sandbox.unit(0, 'uavcrew', 'celery')}", user="adonis")
        env = environ(sandbox)
        assert "root-only-7f3a9c" not in env and "DJANGO_SETTINGS_MODULE=" in env
    finally:
        sandbox.run(0, f"rm -f {ROOT}/shared/.planted")


def test_setup_converts_a_host_set_up_before_and_then_changes_nothing(deployed, tmp_path):
    """A host of the earlier layout (the deploy user's root, shared/ and env file, the journal
    group) is converted by setup; the second run changes nothing; validate passes."""
    sandbox = deployed
    sandbox.check(0, f"chown adonis:adonis {ROOT} {ROOT}/shared {ENV} && chmod 755 {ROOT} && "
                     f"chmod 750 {ROOT}/shared && chmod 600 {ENV} && usermod -aG systemd-journal adonis")
    inv = write_inventory(tmp_path / "hosts.toml", sandbox)
    host = sandbox.hosts[0].name
    first = fab("-H", host, "setup", hosts_file=inv)
    assert first.returncode == 0, first.stdout + first.stderr
    for change in (f"fixed owner/mode of {ROOT}", f"fixed owner/mode of {ROOT}/shared",
                   f"fixed owner/mode of {ENV}", "removed adonis from systemd-journal"):
        assert change in first.stdout, first.stdout
    second = fab("-H", host, "setup", hosts_file=inv)
    assert second.returncode == 0 and "setup of uavcrew: nothing changed" in second.stdout, second.stdout
    valid = fab("-H", host, "validate", hosts_file=inv)
    assert valid.returncode == 0, valid.stdout + valid.stderr
