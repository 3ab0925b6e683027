"""`fab sandbox.*`: local sandbox hosts to try ayna-fab on and to test it against."""

from __future__ import annotations

import time

from invoke import Collection

from ayna_fab.cli import output
from ayna_fab.cli.exitcodes import task
from ayna_fab.config import model as config
from ayna_fab.errors import ConfigError, UsageError
from ayna_fab.sandbox.settings import SandboxSettings


@task(help={"count": "how many hosts (sandbox1..N); default 1",
            "shared_db": "every host reaches sandbox1's PostgreSQL at /srv/ayna-db (as a fleet shares one)",
            "rebuild": "build the hosts' root filesystem afresh (hosts of this sandbox must be down)"})
def up(c, count=1, shared_db=False, rebuild=False):
    """Boot sandbox hosts (Debian, real systemd and sshd) reachable at 127.0.0.1:2201.. over SSH.

    Example: ayna-fab sandbox.up --count 2
    """
    from ayna_fab.sandbox import manager, wheelhouse  # the sandbox's machinery loads only for its tasks
    settings = SandboxSettings.from_env(requirements=wheelhouse.requirements_for(_projects()))
    started = time.monotonic()
    manager.up(settings, int(count), output.say, shared_db=shared_db, rebuild=rebuild)
    _show(settings)
    output.say(f"ready in {time.monotonic() - started:.1f}s; hosts file: {settings.hosts_file}")
    output.say(f"try: ssh -i {settings.key_path} -o UserKnownHostsFile={settings.known_hosts_path} "
               f"-p {settings.ssh_port(1)} root@127.0.0.1")


@task
def down(c):
    """Stop every sandbox host and remove its processes, namespaces, mounts and files.

    Example: ayna-fab sandbox.down
    """
    settings = SandboxSettings.from_env()
    from ayna_fab.sandbox import manager
    names = manager.down(settings, output.say)
    output.say(f"stopped {', '.join(names)}" if names else "no sandbox hosts were running")


@task(help={"json": "print JSON for scripts"})
def status(c, json=False):
    """List sandbox hosts: running or not, SSH address, memory in use.

    Example: ayna-fab sandbox.status --json
    """
    settings = SandboxSettings.from_env()
    if json:
        from ayna_fab.sandbox import manager
        output.emit_json(manager.status(settings))
    else:
        _show(settings)


@task(help={"name": "the host, e.g. sandbox1", "rtt_ms": "added round-trip time in ms (0 for none)",
            "cut": "drop every live SSH connection to the host now",
            "block": "on: the host becomes unreachable (cut, and refuse new connections); off: back",
            "silent": "on: a silent partition (connections stay open, nothing passes, no reset); "
                      "off: back, cutting the connections that lost bytes"})
def link(c, name="sandbox1", rtt_ms=None, cut=False, block=None, silent=None):
    """Simulate a far server, a dropped link or a silent partition on one host's SSH forwarder.

    Example: ayna-fab sandbox.link --name sandbox1 --rtt-ms 80
    """
    settings = SandboxSettings.from_env()
    from ayna_fab.sandbox import forwarder, manager
    state = manager.State.load(settings.state_file)
    if name not in state.hosts:
        raise UsageError(f"no sandbox host {name!r}; running: {', '.join(state.hosts) or 'none'}",
                         step="sandbox link", hint="fab sandbox.up --count N")
    control = state.hosts[name].control
    if rtt_ms is not None:
        output.emit_json(forwarder.request(control, f"rtt {float(rtt_ms)}"))
    if cut:
        output.emit_json(forwarder.request(control, "cut"))
    if block is not None:
        if block not in ("on", "off"):
            raise UsageError("--block takes on or off", step="sandbox link")
        output.emit_json(forwarder.request(control, f"block {block}"))
    if silent is not None:
        if silent not in ("on", "off"):
            raise UsageError("--silent takes on or off", step="sandbox link")
        output.emit_json(forwarder.request(control, f"silent {silent}"))
    if rtt_ms is None and not cut and block is None and silent is None:
        output.emit_json(forwarder.request(control, "stats"))


def _projects():
    """The projects of ./hosts.toml (if there is a valid one), whose wheels the hosts will need."""
    try:
        return list(config.load().projects.values())
    except ConfigError:
        return []


def _show(settings: SandboxSettings) -> None:
    from ayna_fab.sandbox import manager
    rows = manager.status(settings)
    output.table("sandbox hosts", ["host", "running", "ssh", "netns", "memory MiB"],
                 [[r["name"], "yes" if r["running"] else "NO", r["ssh"], r["netns"], r["memory_mib"]]
                  for r in rows])


collection = Collection("sandbox", up, down, status, link)
