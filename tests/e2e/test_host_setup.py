"""Host setup, validate, env-check and strict host keys, against real sandbox hosts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ayna_fab.provision import envcheck as envfile
from tests.e2e.conftest import DEMO_ENV, fab, write_inventory

pytestmark = pytest.mark.e2e

SECRETS = [v for k, v in envfile.parse(DEMO_ENV.read_text()).items() if k in ("SECRET_KEY", "DATABASE_URL")]
SECRETS.append("sandbox-only-db-password")


@pytest.fixture(scope="module")
def inventory(sandbox, tmp_path_factory):
    return write_inventory(tmp_path_factory.mktemp("inv") / "hosts.toml", sandbox)


def _all_output(*results) -> str:
    return "\n".join(r.stdout + r.stderr for r in results)


def _assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_setup_of_a_bare_host(first_setup):
    r = first_setup[0]
    assert r.returncode == 0, r.stdout + r.stderr
    for expected in ("created user adonis", "created /opt/ayna/uavcrew/releases", "installed uv",
                     "uploaded /opt/ayna/uavcrew/shared/.env.production", "created database uavcrew",
                     "installed uavcrew-web-blue.service", "installed uavcrew-web-green.service", "enabled uavcrew-beat.service",
                     "installed /etc/sudoers.d/ayna-uavcrew"):
        assert expected in r.stdout
    _assert_no_secret(_all_output(*first_setup))


def test_a_second_setup_changes_nothing_and_says_so(sandbox, inventory, first_setup):
    before = sandbox.check(0, "find /opt/ayna /etc/systemd/system/uavcrew-* /etc/sudoers.d -printf '%p %m %u %T@\\n'"
                              " | sort")
    r = fab("-H", sandbox.hosts[0].name, "setup", hosts_file=inventory)
    assert r.returncode == 0, r.stderr
    assert "setup of uavcrew: nothing changed" in r.stdout
    assert "changed" not in r.stdout.replace("nothing changed", "")
    after = sandbox.check(0, "find /opt/ayna /etc/systemd/system/uavcrew-* /etc/sudoers.d -printf '%p %m %u %T@\\n'"
                             " | sort")
    assert before == after


def test_units_are_installed_enabled_and_verified(sandbox, first_setup):
    names = [f"uavcrew-{s}.service" for s in ("web-blue", "web-green", "api-blue", "api-green", "celery-blue",
                                              "celery-green", "beat")]
    assert sandbox.check(0, "systemctl is-enabled " + " ".join(names)).split() == ["enabled"] * 7
    code, out, err = sandbox.run(0, "cd /etc/systemd/system && systemd-analyze verify " + " ".join(names))
    complaints = [line for line in (out + err).splitlines() if line.strip()]
    # Before the first deploy the venv's programs do not exist; nothing else may be reported.
    assert all(re.search(r"/opt/ayna/uavcrew/(venv|releases/(blue|green)/\.venv)/bin/", line)
               and "is not executable" in line for line in complaints), complaints
    binds = sandbox.check(0, "grep -h -- '--bind\\|--port' /etc/systemd/system/uavcrew-*.service").split()
    assert sorted(binds) == sorted(["--bind", "127.0.0.1:8130", "\\", "--port", "8131", "\\"] * 2)   # each slot


def test_deploy_user_may_manage_its_units_and_nothing_else(sandbox, first_setup):
    ok = ("sudo -n -l /usr/bin/systemctl restart uavcrew-web-blue.service && sudo -n -l /usr/bin/systemctl "
          "start uavcrew-web-green.service && sudo -n -l /usr/bin/systemctl reload-or-restart uavcrew-beat.service")
    sandbox.check(0, ok, user="adonis")
    for forbidden in ("sudo -n true", "sudo -n /usr/bin/systemctl restart ssh.service",
                      "sudo -n /usr/bin/systemctl restart uavcrew-web-blue.service ssh.service",
                      "sudo -n /usr/bin/systemctl restart uavcrew-web.service",
                      "sudo -n /usr/bin/systemctl daemon-reload", "sudo -n journalctl -n 1",
                      "sudo -n -u postgres psql -c 'select 1'", "sudo -n /bin/sh -c id"):
        code, _, err = sandbox.run(0, forbidden, user="adonis")
        assert code != 0, forbidden
    # Logs: its own units' only, through the project's journal reader; never the whole journal.
    reader = "sudo -n /usr/local/lib/ayna-fab/journal-uavcrew"
    sandbox.check(0, f"{reader} --unit=uavcrew-web-blue.service --lines=1", user="adonis")
    assert "systemd-journal" not in sandbox.check(0, "id -nG adonis").split()
    for forbidden in (f"{reader} --unit=ssh.service", f"{reader} --unit=uavcrew-web-blue.service -u ssh",
                      f"{reader} --unit=uavcrew-web-blue.service --file=/var/log/journal"):
        assert sandbox.run(0, forbidden, user="adonis")[0] != 0, forbidden
    assert "sshd" not in sandbox.check(0, "journalctl --no-pager -q -u ssh.service -n 5 || true", user="adonis")
    assert sandbox.check(0, "stat -c '%U %a' /usr/local/lib/ayna-fab/journal-uavcrew").strip() == "root 755"
    assert sandbox.check(0, "stat -c '%U %a' /etc/sudoers.d/ayna-uavcrew").strip() == "root 440"


def test_env_file_is_private_and_never_printed(sandbox, inventory, first_setup):
    assert sandbox.check(0, "stat -c '%U:%G %a' /opt/ayna/uavcrew/shared/.env.production").strip() == \
        "root:adonis 640"
    results = [fab("-H", "sandbox1", "env-check", hosts_file=inventory),
               fab("-H", "sandbox1", "validate", "--json", hosts_file=inventory)]
    assert all(r.returncode == 0 for r in results), _all_output(*results)
    _assert_no_secret(_all_output(*results))


def test_a_differing_remote_env_is_kept_unless_forced_and_only_keys_are_shown(sandbox, inventory, first_setup,
                                                                            tmp_path):
    host = sandbox.hosts[1].name
    local = tmp_path / "changed.env"
    local.write_text(DEMO_ENV.read_text().replace("LOG_LEVEL=INFO", "LOG_LEVEL=DEBUG") + "NEW_FLAG=on\n")
    inv = write_inventory(tmp_path / "hosts.toml", sandbox, env_file=local)
    before = sandbox.check(1, "sha256sum /opt/ayna/uavcrew/shared/.env.production")
    kept = fab("-H", host, "setup", hosts_file=inv)
    assert kept.returncode == 0, kept.stderr
    assert "added: NEW_FLAG; changed: LOG_LEVEL" in kept.stdout and "--force-env" in kept.stdout
    assert sandbox.check(1, "sha256sum /opt/ayna/uavcrew/shared/.env.production") == before
    forced = fab("-H", host, "setup", "--force-env", hosts_file=inv)
    assert forced.returncode == 0, forced.stderr
    assert "replaced /opt/ayna/uavcrew/shared/.env.production (added: NEW_FLAG; changed: LOG_LEVEL)" in forced.stdout
    assert "DEBUG" not in _all_output(kept, forced)
    _assert_no_secret(_all_output(kept, forced))
    assert "NEW_FLAG=on" in sandbox.check(1, "cat /opt/ayna/uavcrew/shared/.env.production")
    restored = fab("-H", host, "setup", "--force-env", hosts_file=inventory)
    assert restored.returncode == 0, restored.stderr


def test_validate_passes_on_a_set_up_host(inventory, first_setup):
    r = fab("-H", "sandbox", "validate", hosts_file=inventory)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("✓") == 7 * len(first_setup) and "✗" not in r.stdout


BREAKAGES = [
    ("a missing unit", "rm /etc/systemd/system/uavcrew-api-green.service && systemctl daemon-reload",
     "3. systemd units are installed", "uavcrew-api-green.service is not installed"),
    ("a wrong port", "sed -i 's/127.0.0.1:8130/127.0.0.1:8199/' /etc/systemd/system/uavcrew-web-blue.service",
     "4. installed units match their templates", "uavcrew-web-blue.service differs from its template"),
    ("a missing variable", "sed -i '/^REDIS_URL=/d' /opt/ayna/uavcrew/shared/.env.production",
     "7. environment file", "REDIS_URL is missing"),
    ("a wrong owner", "chown root:root /opt/ayna/uavcrew/shared/media",
     "1. layout", "/opt/ayna/uavcrew/shared/media is root:root 750, expected adonis:adonis 750"),
    ("a foreign listener", "systemd-run --unit=rogue python3 -m http.server 8135 --bind 0.0.0.0 && "
     "for i in $(seq 200); do ss -Hltn 'sport = :8135' | grep -q . && break; sleep 0.05; done; "
     "ss -Hltn 'sport = :8135' | grep -q .",   # listening before validate looks, or the setup fails
     "6. ports match the registry", "something listens on 0.0.0.0:8135"),
]


@pytest.mark.parametrize("what,breakage,check,reason", BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_validate_fails_with_the_reason_for_each_breakage(sandbox, inventory, first_setup, what, breakage,
                                                          check, reason):
    sandbox.check(0, breakage)
    try:
        r = fab("-H", "sandbox1", "validate", hosts_file=inventory)
        assert r.returncode == 1, r.stdout + r.stderr
        failed = [line for line in r.stdout.splitlines() if line.startswith("✗")]
        assert len(failed) == 1 and check in failed[0], r.stdout
        assert reason in r.stdout
        as_json = fab("-H", "sandbox1", "validate", "--json", hosts_file=inventory)
        assert as_json.returncode == 1 and reason in as_json.stdout
    finally:
        sandbox.run(0, "systemctl stop rogue 2>/dev/null; true")
        fixed = fab("-H", "sandbox1", "setup", "--force-env", hosts_file=inventory)
        assert fixed.returncode == 0, fixed.stderr
    assert fab("-H", "sandbox1", "validate", hosts_file=inventory).returncode == 0


def test_unknown_host_key_is_refused_with_the_command_that_trusts_it(sandbox, first_setup, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inv = write_inventory(tmp_path / "hosts.toml", sandbox, known_hosts=empty)
    r = fab("-H", "sandbox1", "validate", hosts_file=inv)
    assert r.returncode == 2
    assert "refusing an unknown host key" in r.stderr and "fab -H sandbox1 trust" in r.stderr
    # no terminal: an answer piped in is never taken for a yes; the flag that gives it is named
    declined = fab("-H", "sandbox1", "trust", hosts_file=inv, input="y\n")
    assert declined.returncode == 2 and empty.read_text() == ""
    assert "SHA256:" in declined.stdout and "pass --yes" in declined.stderr
    accepted = fab("-H", "sandbox1", "trust", "--yes", hosts_file=inv)
    assert accepted.returncode == 0, accepted.stderr
    assert f"[127.0.0.1]:{sandbox.hosts[0].ssh_port} ssh-ed25519 " in empty.read_text()
    assert fab("-H", "sandbox1", "validate", hosts_file=inv).returncode == 0


def test_changed_host_key_is_refused_loudly(sandbox, first_setup, tmp_path):
    other = (Path(sandbox.hosts[1].dir) / "ssh_host_ed25519_key.pub").read_text().split()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sandbox.hosts[0].ssh_port} {other[0]} {other[1]}\n")
    inv = write_inventory(tmp_path / "hosts.toml", sandbox, known_hosts=wrong)
    for task in ("validate", "setup", "trust"):
        r = fab("-H", "sandbox1", task, hosts_file=inv, input="y\n")
        assert r.returncode == 2, (task, r.stdout, r.stderr)
        assert "HOST KEY CHANGED" in r.stderr
    assert len(wrong.read_text().splitlines()) == 1


def test_an_unknown_target_is_refused_before_any_connection(inventory):
    r = fab("-H", "sandbox9", "setup", hosts_file=inventory)
    assert r.returncode == 2
    assert "unknown target 'sandbox9'" in r.stderr and "sandbox1" in r.stderr
