"""The command line itself: task list, targets as one call, no raw remote commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1].parent
FAB = str(Path(sys.executable).with_name("fab"))


def fab(*args, hosts_file):
    return subprocess.run([FAB, *args], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "AYNA_FAB_HOSTS": str(hosts_file)})


def inventory(tmp_path):
    path = tmp_path / "hosts.toml"
    # 192.0.2.1 is TEST-NET-1: nothing answers there, and nothing here may try.
    path.write_text('[hosts.far]\nhostname = "192.0.2.1"\n\n[hosts.other]\nhostname = "192.0.2.2"\n')
    return path


def test_every_task_is_listed_with_help(tmp_path):
    out = fab("--list", hosts_file=inventory(tmp_path)).stdout
    for name in ("deploy", "rollback", "status", "releases", "unlock", "setup", "validate", "env-check",
                 "trust", "sandbox.up", "sandbox.down"):
        assert f"  {name} " in out


def test_raw_commands_after_double_dash_are_refused_before_any_connection(tmp_path):
    # Fabric would run them on every -H host over a connection that accepts any host key.
    r = fab("-H", "far", "status", "--", "rm", "-rf", "/tmp/x", hosts_file=inventory(tmp_path))
    assert r.returncode == 2
    assert "runs no raw commands" in r.stderr


def test_an_unknown_target_in_a_list_is_refused_listing_the_known_ones(tmp_path):
    r = fab("-H", "far,typo", "status", hosts_file=inventory(tmp_path))
    assert r.returncode == 2
    assert "unknown target 'typo'" in r.stderr and "far" in r.stderr and "other" in r.stderr


def test_a_ctrl_c_during_a_remote_command_is_kept_until_it_returns():
    """invoke swallows KeyboardInterrupt while a command runs; Remote must not lose it. The command's
    answer counts (it ran to its end), and the interrupt is kept for the runner, which stops the
    operation before its next call."""
    import signal

    import pytest

    from ayna_fab.remote.transport import Command, Remote

    class SlowConn:
        def run(self, *a, **kw):
            try:  # Ctrl-C while the command runs; what invoke does: catch it, keep waiting for the command
                signal.raise_signal(signal.SIGINT)   # its handler runs before this call returns
            except KeyboardInterrupt:
                pass

            class R:
                exited, stdout, stderr = 0, "done", ""
            return R()

    from ayna_fab.ops.runner import HostRun
    r = Remote("h", SlowConn())
    # As in a terminal, whatever the runner inherited (background jobs start with SIGINT ignored).
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert r.run(Command("true", "step")).stdout == "done"
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert r.interrupted == "Ctrl-C"
    t = HostRun(None, None, None, r, {"token": "t"}, print)
    with pytest.raises(KeyboardInterrupt, match="Ctrl-C"):
        t.call(Command("true", "next"))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # while a host is being put back, interrupts stay ignored
        assert r.run(Command("true", "step")).stdout == "done"
    finally:
        signal.signal(signal.SIGINT, previous)
